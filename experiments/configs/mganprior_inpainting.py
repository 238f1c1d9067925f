"""mGANprior's inpainting.py (official defaults): inpainting with masks/mask-2.png.

  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_inpainting.py:generator=PGGAN.pth --out runs/mganprior_inpainting
  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_inpainting.py:runlocal --out /tmp/mganprior_inpainting  # golden 32 px

Official settings: composing layer 4, N 30, vgg_lambda 0.1, 3000 iterations, masks/mask-2.png, pggan_churchoutdoor. SGD lr 1, Combine loss (l1 0, l2 1, VGG16[:16] L1 at 256 px), batch 1.
"""

from jaxinv.experiments.configs import common


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, generator="models/pggan_churchoutdoor.pth", images=f"{common.DATA}/inpainting/church", lpips="",
                       vgg="")
  c = common.base()
  c.generator, c.images, c.lpips = a["generator"], a["images"], a["lpips"]
  if a["vgg"]:
    c.vgg = a["vgg"]
  c.task = "inpaint"
  c.codes, c.layer, c.steps = 30, 4, 3000
  c.loss.vgg_lambda = 0.1
  c.task_args.mask = f"{common.DATA}/masks/mask-2.png"
  if a["runlocal"]:
    common.runlocal(c)
    c.codes = 4
  c.lock()
  return c


def sweep(add):
  add()
