"""PTI vs its two step counts (``method = "pti"``): reconstruction PSNR / SSIM / LPIPS of the tuned
generators' renders of their pivots per (projector steps, tuning steps) — how good a pivot PTI
needs and how much tuning it takes — with PTI's other settings (lr 3e-4, LPIPS early stop 0.06).

  python -m jaxinv.experiments.sweep --config experiments/configs/pti_steps.py:generator=models/stylegan2-ffhq-config-f.pt --out runs/pti_steps
  python -m jaxinv.experiments.sweep --config experiments/configs/pti_steps.py:runlocal --out /tmp/pti_steps  # golden 32 px, minutes
  python -m jaxinv.experiments.report runs/pti_steps

``runlocal``: the golden 32 px generator and LPIPS (random AlexNet backbone) of the e4e_pti case
for both phases, 10 / 30 projector × 5 / 20 tuning steps, 2 images; ``test``: the test-suite
variant (3 projector steps, 1 and 2 tuning steps, 1 image).
"""

from jaxinv.experiments.configs import common

PROJECTOR_STEPS = (150, 450)
PTI_STEPS = (50, 350)

_arg = {}


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, test=False,
                       generator="models/stylegan2-ffhq-config-f.pt", images=f"{common.DATA}/face",
                       lpips="")
  _arg.clear()
  _arg.update(a)
  c = common.pti_base()
  c.generator, c.images, c.lpips = a["generator"], a["images"], a["lpips"]
  if a["runlocal"] or a["test"]:
    c.generator = f"{common.GOLDEN_E4E_PTI}/pti_G_ema_rosinality.pt"
    for net, backbone in (("lpips_net", "lpips_backbone"),
                          ("projector_lpips", "projector_lpips_backbone")):
      c[net] = f"{common.GOLDEN_E4E_PTI}/lpips_alex_lin_v0.1.pth"
      c[backbone] = f"{common.GOLDEN_E4E_PTI}/lpips_alex_backbone_random.pth.xz"
    c.max_images = 2
  if a["test"]:
    c.max_images = 1
    c.batch = 1
  c.lock()
  return c


def sweep(add):
  if _arg.get("test"):
    grid = [(3, 1), (3, 2)]
  elif _arg.get("runlocal"):
    grid = [(p, t) for p in (10, 30) for t in (5, 20)]
  else:
    grid = [(p, t) for p in PROJECTOR_STEPS for t in PTI_STEPS]
  for projector_steps, pti_steps in grid:
    add(projector_steps=projector_steps, pti_steps=pti_steps)
