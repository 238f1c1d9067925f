"""PadInv: the encoder alone vs Adam refinement after it, in the padding space (w+ and padding
maps) vs w+ alone (``method = "padinv"``): reconstruction PSNR / SSIM / LPIPS per (space, steps)
— how much per-image optimisation adds to the official encoder-only inversion, and how much of
it the padding maps carry. Loss weights of the released scripts (MSE 1, LPIPS 0.8).

  python -m jaxinv.experiments.sweep --config experiments/configs/padinv_refine.py:generator=models/padinv/church_gan_checkpoint.pth,encoder=models/padinv/church_encoder_checkpoint.pth --out runs/padinv_refine
  python -m jaxinv.experiments.sweep --config experiments/configs/padinv_refine.py:runlocal --out /tmp/padinv_refine  # golden 64 px, minutes
  python -m jaxinv.experiments.report runs/padinv_refine

``runlocal``: the golden 64 px PadInv generator, encoder and (random) AlexNet LPIPS, 10 / 30
steps, 2 images; ``test``: the test-suite variant (encoder only, and 3 padding-space steps; 1 image).
"""

from jaxinv.experiments.configs import common

SPACES = ("padding", "wp")
STEPS = (100, 500)

_arg = {}


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, test=False,
                       generator="models/padinv/church_gan_checkpoint.pth",
                       encoder="models/padinv/church_encoder_checkpoint.pth",
                       images=f"{common.DATA}/gan_inversion/church", lpips="")
  _arg.clear()
  _arg.update(a)
  c = common.padinv_base()
  c.generator, c.encoder, c.images, c.lpips = a["generator"], a["encoder"], a["images"], a["lpips"]
  if a["runlocal"] or a["test"]:
    c.generator = f"{common.GOLDEN_PADINV}/gan_checkpoint.pth"
    c.encoder = f"{common.GOLDEN_PADINV}/encoder_checkpoint.pth"
    c.lpips_net = f"{common.GOLDEN_PADINV}/lpips_lin_random.pth"
    c.lpips_backbone = f"{common.GOLDEN_PADINV}/lpips_alex_features_random.pth"
    c.chunk = 5
    c.max_images = 2
  if a["test"]:
    c.chunk = 2
    c.max_images = 1
    c.batch = 1
  c.lock()
  return c


def sweep(add):
  add(steps=0)                     # the official inversion: the encoder alone
  if _arg.get("test"):
    add(steps=3)
    return
  for space in SPACES:
    for steps in ((10, 30) if _arg.get("runlocal") else STEPS):
      add(space=space, steps=steps)
