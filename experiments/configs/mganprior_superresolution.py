"""mGANprior's super_resolution.py (official defaults): super-resolution.

  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_superresolution.py:generator=PGGAN.pth --out runs/mganprior_superresolution
  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_superresolution.py:runlocal --out /tmp/mganprior_superresolution  # golden 32 px

Official settings: composing layer 6, N 30, factor 16, bilinear down-sampling, vgg_lambda 1, 2000 iterations, pggan_celebahq. SGD lr 1, Combine loss (l1 0, l2 1, VGG16[:16] L1 at 256 px), batch 1.
"""

from jaxinv.experiments.configs import common


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, generator="models/pggan_celebahq.pth", images=f"{common.DATA}/superresolution", lpips="",
                       vgg="")
  c = common.base()
  c.generator, c.images, c.lpips = a["generator"], a["images"], a["lpips"]
  if a["vgg"]:
    c.vgg = a["vgg"]
  c.task = "super-resolve"
  c.codes, c.layer, c.steps = 30, 6, 2000
  c.loss.vgg_lambda = 1.0
  c.task_args.factor = 16
  c.task_args.downsample = "bilinear"
  if a["runlocal"]:
    common.runlocal(c)
    c.codes, c.layer = 4, 4
    c.task_args.factor = 4      # 32 px / 16 would leave 2 px
  c.lock()
  return c


def sweep(add):
  add()
