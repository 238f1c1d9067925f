"""DGP's ImageNet 128 px restoration schedules side by side (``method = "dgp"``): super-resolution
with the discriminator-feature loss vs with MSE (both x4), colorization and inpainting, each with
the official stages, learning rates and 500-candidate z search, on DGP's example images with the
classes its scripts pass. PSNR / SSIM of the output vs the original image, plus DGP's own metrics
(``dgp_psnr``...: its scikit-image conventions, the hole only for inpainting).

  python -m jaxinv.experiments.sweep --config experiments/configs/dgp_schedules.py:generator=models/dgp/G_ema_128.pth,discriminator=models/dgp/D_128.pth --out runs/dgp_schedules
  python -m jaxinv.experiments.sweep --config experiments/configs/dgp_schedules.py:runlocal --out /tmp/dgp_schedules  # golden tiny BigGAN, minutes
  python -m jaxinv.experiments.report runs/dgp_schedules

``generator`` / ``discriminator``: DGP's ``G_ema_128.pth`` / ``D_128.pth`` (or converted dirs);
``iterations=N`` runs N steps per stage instead of the schedule's. ``runlocal``: the golden tiny
128 px BigGAN (10 classes, so classes are searched), 3 steps per stage, 2 candidates, 1 image;
``test``: the test-suite variant (SR, 2 seeds in one batch: one compiled program, 1 step per stage).
"""

from jaxinv.experiments.configs import common

SCHEDULES = ("in128_SR_D_biased", "in128_SR_MSE_biased", "in128_colorization", "in128_inpainting")

_arg = {}


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, test=False, generator="models/dgp/G_ema_128.pth",
                       discriminator="models/dgp/D_128.pth", images=common.DGP_DATA,
                       labels=f"{common.DGP_DATA}/labels.json", iterations=0, lpips="")
  _arg.clear()
  _arg.update(a)
  c = common.dgp_base()
  c.generator, c.discriminator, c.images, c.lpips = a["generator"], a["discriminator"], a["images"], a["lpips"]
  c.labels = a["labels"]
  if a["iterations"]:
    c.iterations = [a["iterations"]]
  if a["runlocal"] or a["test"]:
    common.dgp_runlocal(c, iterations=1 if a["test"] else 3)
  if a["test"]:
    c.batch = 2
  c.lock()
  return c


def sweep(add):
  if _arg.get("test"):
    for seed in (0, 1):
      add(schedule=SCHEDULES[0], seed=seed)
    return
  for schedule in SCHEDULES:
    add(schedule=schedule)
