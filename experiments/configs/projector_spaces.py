"""The StyleGAN2 projector in w vs w+, with its LPIPS image loss vs MSE (``method = "projector"``):
reconstruction PSNR / SSIM / LPIPS per (space, image loss), the script's other settings (Adam with
its lr ramp, noise regularisation, 1000 steps).

  python -m jaxinv.experiments.sweep --config experiments/configs/projector_spaces.py:generator=models/stylegan2-ffhq-config-f.pt --out runs/projector_spaces
  python -m jaxinv.experiments.sweep --config experiments/configs/projector_spaces.py:runlocal --out /tmp/projector_spaces  # golden 32 px, minutes
  python -m jaxinv.experiments.report runs/projector_spaces

``runlocal``: the golden 32 px rosinality generator, 50 steps, 2 images; ``test``: the test-suite
variant (w and w+ with MSE, 3 steps, 1 image).
"""

from jaxinv.experiments.configs import common

SPACES = ("w", "wp")
IMAGE_LOSSES = ("lpips", "mse")

_arg = {}


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, test=False,
                       generator="models/stylegan2-ffhq-config-f.pt", images=f"{common.DATA}/face",
                       lpips="")
  _arg.clear()
  _arg.update(a)
  c = common.projector_base()
  c.generator, c.images, c.lpips = a["generator"], a["images"], a["lpips"]
  if a["runlocal"] or a["test"]:
    c.generator = f"{common.GOLDEN_ROSINALITY}/stylegan2_32px_ckpt.pt"
  common.projector_sizes(c, a["runlocal"], a["test"])
  c.lock()
  return c


def sweep(add):
  for space in SPACES:
    for loss in (("mse",) if _arg.get("test") else IMAGE_LOSSES):
      add(space=space, image_loss=loss)
