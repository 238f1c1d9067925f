"""mGANprior's multi_code_inversion.py (official defaults): GAN inversion (reconstruction).

  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_inversion.py:generator=PGGAN.pth --out runs/mganprior_inversion
  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_inversion.py:runlocal --out /tmp/mganprior_inversion  # golden 32 px

Official settings: composing layer 6, N 30, 3000 iterations. SGD lr 1, Combine loss (l1 0, l2 1, VGG16[:16] L1 at 256 px), batch 1.
"""

from jaxinv.experiments.configs import common


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, generator="models/pggan_churchoutdoor.pth", images=f"{common.DATA}/gan_inversion/church", lpips="",
                       vgg="")
  c = common.base()
  c.generator, c.images, c.lpips = a["generator"], a["images"], a["lpips"]
  if a["vgg"]:
    c.vgg = a["vgg"]
  c.task = "reconstruct"
  c.codes, c.layer, c.steps = 30, 6, 3000
  if a["runlocal"]:
    common.runlocal(c)
    c.codes, c.layer = 4, 4
  c.lock()
  return c


def sweep(add):
  add()
