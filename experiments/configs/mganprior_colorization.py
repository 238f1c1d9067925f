"""mGANprior's colorization.py (official defaults): colorization of grey images.

  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_colorization.py:generator=PGGAN.pth --out runs/mganprior_colorization
  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_colorization.py:runlocal --out /tmp/mganprior_colorization  # golden 32 px

Official settings: composing layer 4, N 20, vgg_lambda 1, 1500 iterations, pggan_churchoutdoor. SGD lr 1, Combine loss (l1 0, l2 1, VGG16[:16] L1 at 256 px), batch 1.
"""

from jaxinv.experiments.configs import common


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, generator="models/pggan_churchoutdoor.pth", images=f"{common.DATA}/colorization/church", lpips="",
                       vgg="")
  c = common.base()
  c.generator, c.images, c.lpips = a["generator"], a["images"], a["lpips"]
  if a["vgg"]:
    c.vgg = a["vgg"]
  c.task = "colorize"
  c.codes, c.layer, c.steps = 20, 4, 1500
  c.loss.vgg_lambda = 1.0
  if a["runlocal"]:
    common.runlocal(c)
  c.lock()
  return c


def sweep(add):
  add()
