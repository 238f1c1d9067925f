"""NVIDIA's projector on a StyleGAN2 and a StyleGAN3 pickle (``method = "nvidia-projector"``), with
its LPIPS-VGG image loss vs MSE: reconstruction PSNR / SSIM / LPIPS per (generator, image loss) —
how well each architecture's w space reconstructs the same images under the script's settings.

  python -m jaxinv.experiments.sweep --config "experiments/configs/nvidia_projector_models.py:stylegan2=models/stylegan2-ffhq-1024x1024.pkl,stylegan3=models/stylegan3-t-ffhq-1024x1024.pkl" --out runs/nvidia_projector
  python -m jaxinv.experiments.sweep --config experiments/configs/nvidia_projector_models.py:runlocal --out /tmp/nvidia_projector  # golden 32 px, minutes
  python -m jaxinv.experiments.report runs/nvidia_projector

An empty ``stylegan2=`` or ``stylegan3=`` leaves that generator out. ``runlocal``: the 32 px
unconditional StyleGAN2 and StyleGAN3 pickles of the nvidia_stylegan case (unless given), 50
steps, 2 images;
``test``: the test-suite variant (MSE only, 3 steps, 1 image).
"""

from jaxinv.experiments.configs import common

IMAGE_LOSSES = ("lpips", "mse")
_RELEASED = {"stylegan2": "models/stylegan2-ffhq-1024x1024.pkl",
             "stylegan3": "models/stylegan3-t-ffhq-1024x1024.pkl"}
_GOLDEN = {"stylegan2": f"{common.GOLDEN_NVIDIA}/sg2b.pkl",
           "stylegan3": f"{common.GOLDEN_NVIDIA}/sg3.pkl"}
_DEFAULT = "default"

_arg = {}


def get_config(arg: str = ""):
  a = common.parse_arg(arg, runlocal=False, test=False, stylegan2=_DEFAULT, stylegan3=_DEFAULT,
                       images=f"{common.DATA}/face", lpips="")
  local = a["runlocal"] or a["test"]
  for key in ("stylegan2", "stylegan3"):
    if a[key] == _DEFAULT:
      a[key] = (_GOLDEN if local else _RELEASED)[key]
  if not (a["stylegan2"] or a["stylegan3"]):
    raise ValueError("give at least one generator (stylegan2=PKL and/or stylegan3=PKL)")
  _arg.clear()
  _arg.update(a)
  c = common.nvidia_projector_base()
  c.generator = a["stylegan2"] or a["stylegan3"]
  c.images, c.lpips = a["images"], a["lpips"]
  common.projector_sizes(c, a["runlocal"], a["test"])
  c.lock()
  return c


def sweep(add):
  for generator in filter(None, (_arg.get("stylegan2"), _arg.get("stylegan3"))):
    for loss in (("mse",) if _arg.get("test") else IMAGE_LOSSES):
      add(generator=generator, image_loss=loss)
