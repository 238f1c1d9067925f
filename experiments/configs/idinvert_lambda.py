"""In-domain GAN inversion vs the weight λ of its domain regulariser (``method = "idinvert"``):
reconstruction PSNR / SSIM / LPIPS of the optimised code for each λ (λ = 0: plain w+ optimisation
from the encoder's code), with the release's other settings (Adam lr 0.01, 100 steps, VGG
feature weight 5e-5); ``encoder_psnr`` is the encoder-only reconstruction it starts from.

  python -m jaxinv.experiments.sweep --config experiments/configs/idinvert_lambda.py:generator=models/styleganinv_ffhq256_generator.pth,encoder=models/styleganinv_ffhq256_encoder.pth,perceptual=models/vgg16.pth --out runs/idinvert_lambda
  python -m jaxinv.experiments.sweep --config experiments/configs/idinvert_lambda.py:runlocal --out /tmp/idinvert_lambda  # golden 32 px, minutes
  python -m jaxinv.experiments.report runs/idinvert_lambda

``runlocal``: the golden 32 px IDInvert generator, encoder and VGG, 10 steps, 2 images;
``test``: the test-suite variant (λ 0 and 2, no VGG term, 3 steps, 1 image).
"""

from jaxinv.experiments.configs import common

LAMBDAS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
TEST_LAMBDAS = (0.0, 2.0)

_arg = {}


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, test=False,
                       generator="models/styleganinv_ffhq256_generator.pth",
                       encoder="models/styleganinv_ffhq256_encoder.pth",
                       perceptual="models/vgg16.pth", images=common.IDINVERT_DATA, lpips="")
  _arg.clear()
  _arg.update(a)
  c = common.idinvert_base()
  c.generator, c.encoder, c.perceptual = a["generator"], a["encoder"], a["perceptual"]
  c.images, c.lpips = a["images"], a["lpips"]
  if a["runlocal"] or a["test"]:
    c.generator = f"{common.GOLDEN_IDINVERT}/styleganinv_golden32_generator.pth"
    c.encoder = f"{common.GOLDEN_IDINVERT}/styleganinv_golden32_encoder.pth"
    c.perceptual = f"{common.GOLDEN_IDINVERT}/vgg16.pth.xz"
    c.steps, c.chunk = 10, 5
    c.max_images = 2
  if a["test"]:
    c.perceptual, c.feat_weight = "", 0.0
    c.steps, c.chunk = 3, 2
    c.max_images = 1
  c.lock()
  return c


def sweep(add):
  for lam in TEST_LAMBDAS if _arg.get("test") else LAMBDAS:
    add(reg_weight=lam)
