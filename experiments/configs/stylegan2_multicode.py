"""Multi-code inversion on StyleGAN2 (mGANprior's composition in a style generator): PSNR / LPIPS of
reconstruction vs the number of codes N for each composing layer ℓ (``method = "style"``,
``space = "multi"``: w+ codes with a learned w+ suffix, Adam lr 0.05, Combine loss: MSE + VGG16[:16]
L1 at 256 px, 1000 steps).

  python -m jaxinv.experiments.sweep --config experiments/configs/stylegan2_multicode.py:generator=models/stylegan2-ffhq-config-f.pt,lpips=LPIPS_DIR --out runs/stylegan2_multicode
  python -m jaxinv.experiments.sweep --config experiments/configs/stylegan2_multicode.py:runlocal --out /tmp/stylegan2_multicode  # golden 32 px, minutes
  python -m jaxinv.experiments.report runs/stylegan2_multicode

``generator``: a rosinality StyleGAN2 checkpoint (or an NVIDIA StyleGAN2 pickle, or a converted dir);
``images``: face images (loaded at the generator's resolution); ``layer`` indexes the synthesis
units (``3k + 1`` is the first convolution at ``4·2^k`` px: 4, 7, 10, 13 = 8, 16, 32, 64 px).
``test``: the test-suite variant (2 points, 3 steps, MSE, 1 image).
"""

from jaxinv.experiments.configs import common

CODES = (1, 2, 4, 8, 16)
LAYERS = (4, 7, 10, 13)
RUNLOCAL_CODES, RUNLOCAL_LAYERS = (1, 4), (4, 7)
TEST_CODES, TEST_LAYERS = (1, 2), (4,)

_arg = {}


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, test=False,
                       generator="models/stylegan2-ffhq-config-f.pt", images=f"{common.DATA}/face",
                       lpips="", vgg="")
  _arg.clear()
  _arg.update(a)
  c = common.style_base()
  c.generator, c.images, c.lpips = a["generator"], a["images"], a["lpips"]
  if a["vgg"]:
    c.vgg = a["vgg"]
  if a["runlocal"] or a["test"]:
    c.generator = f"{common.GOLDEN_ROSINALITY}/stylegan2_32px_ckpt.pt"
    c.vgg = f"{common.GOLDEN}/vgg16_features16_seed0.pth"
    c.steps, c.chunk = 10, 5
    c.max_images = 1
    c.loss.vgg_size = 64
  if a["test"]:
    c.loss.loss = "mse"
    c.steps, c.chunk = 3, 2
    c.batch = 1
  c.lock()
  return c


def sweep(add):
  if _arg.get("test"):
    codes, layers = TEST_CODES, TEST_LAYERS
  elif _arg.get("runlocal"):
    codes, layers = RUNLOCAL_CODES, RUNLOCAL_LAYERS
  else:
    codes, layers = CODES, LAYERS
  for layer in layers:
    for n in codes:
      add(codes=n, layer=layer)
