"""mGANprior's N × ℓ ablation (paper Sec. 4.1): PSNR / LPIPS of reconstruction vs the number of
latent codes N for each composing layer ℓ, with the official inversion settings (SGD lr 1,
Combine loss: MSE + VGG16[:16] L1 at 256 px, 3000 steps).

  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_ablation.py:generator=PGGAN.pth,lpips=LPIPS_DIR --out runs/ablation
  python -m jaxinv.experiments.sweep --config experiments/configs/mganprior_ablation.py:runlocal --out /tmp/ablation  # golden 32 px, minutes

``generator``: a genforce PGGAN checkpoint (``pggan_churchoutdoor.pth``) or converted dir;
``images``: its test images; ``lpips``: a converted LPIPS model (adds the lpips column).
"""

from jaxinv.experiments.configs import common

CODES = (1, 5, 10, 20, 30)
LAYERS = (2, 3, 4, 5, 6, 7, 8)
RUNLOCAL_CODES, RUNLOCAL_LAYERS = (1, 4), (2, 4)

_arg = {}


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, generator="models/pggan_churchoutdoor.pth",
                       images=f"{common.DATA}/gan_inversion/church", lpips="", vgg="")
  _arg.clear()
  _arg.update(a)
  c = common.base()
  c.generator, c.images, c.lpips = a["generator"], a["images"], a["lpips"]
  if a["vgg"]:
    c.vgg = a["vgg"]
  if a["runlocal"]:
    common.runlocal(c)
  c.lock()
  return c


def sweep(add):
  codes, layers = (RUNLOCAL_CODES, RUNLOCAL_LAYERS) if _arg.get("runlocal") else (CODES, LAYERS)
  for layer in layers:
    for n in codes:
      add(codes=n, layer=layer)
