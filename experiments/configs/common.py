"""The base ConfigDict every sweep config starts from (each field documented once, here).

A config file imports :func:`base`, changes what its experiment fixes and lists its
grid in ``sweep(add)``. Relative paths resolve against the working directory, then the
data root ``$JAXINV_DATA_ROOT`` (default: the source checkout's root; see ``sweep``).
"""

import ml_collections

GOLDEN = "../shared/golden/mganprior"
DATA = "../shared/data/mganprior_examples"
GOLDEN_ROSINALITY = "../shared/golden/stylegan2_rosinality"
GOLDEN_DGP = "../shared/golden/dgp"
DGP_DATA = "../shared/data/dgp_examples"
GOLDEN_IDINVERT = "../shared/golden/idinvert"
IDINVERT_DATA = "../shared/data/idinvert_examples"


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # --- experiment (hashed into config_hash)
  c.generator = f"{GOLDEN}/pggan_golden32_generator.pth"  # checkpoint (converted on the fly) or model dir
  c.task = "reconstruct"           # reconstruct | colorize | super-resolve | inpaint | denoise
  c.task_args = ml_collections.ConfigDict({"factor": None, "downsample": "bilinear", "mask": None,
                                           "sigma": None})
  c.codes = 30                     # N latent codes
  c.layer = 6                      # composing layer ℓ
  c.steps = 3000
  c.optimizer = "sgd"              # sgd | adam
  c.lr = 1.0
  c.loss = ml_collections.ConfigDict({
      "loss": "combine", "l1_lambda": 0.0, "l2_lambda": 1.0, "vgg_lambda": 1.0,
      "vgg_layer": 16, "vgg_size": 256, "vgg_loss": "l1"})
  c.vgg = "imagenet-vgg16"         # VGG16 of the perceptual loss (built-in, or a model dir/checkpoint)
  c.init = "normal"                # z init: normal | zero (alpha = 1/N)
  c.seed = 0                       # init of an image: fold_in(PRNGKey(seed), crc32(image name))
  c.image_loader = "mganprior"     # jaxinv.io.images loader convention
  c.compute_dtype = "float32"      # float32 | bfloat16 (opt-in mixed precision)
  # --- execution (not hashed: they do not change the numbers)
  c.images = f"{DATA}/gan_inversion/church"  # a folder, a file, a TFDS split (tfds:NAME?split=test), or a list
  c.max_images = 0                 # 0 = all
  c.batch = 8                      # items per compiled batch (rounded up to the device count)
  c.chunk = 50                     # steps per compiled chunk = checkpoint interval
  c.save_images = True             # RUN_DIR/images/<config_hash>/<image>.png
  c.lpips = ""                     # alex | vgg (built-in) or an LPIPS model dir ("" = no lpips column)
  c.model_cache = ""               # where converted checkpoints go ("" = RUN_DIR/models)
  return c


def parse_arg(arg: str, **defaults) -> dict:
  """``"runlocal,generator=/m/pggan.pth"`` → ``{"runlocal": True, "generator": "/m/pggan.pth"}``.

  Values take the type of their default (bools from flags or ``key=true``); keys without a
  default are refused, so a typo fails loudly.
  """
  out = dict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, eq, value = part.partition("=")
    if key not in defaults:
      raise ValueError(f"unknown config option {key!r}; known: {', '.join(sorted(defaults))}")
    d = defaults[key]
    if not eq:
      out[key] = True
    elif isinstance(d, bool):
      out[key] = value.lower() in ("1", "true", "yes")
    else:
      out[key] = type(d)(value)
  return out


def runlocal(c, steps: int = 10):
  """Shrinks an official config to the golden 32 px generator and VGG, ``steps`` steps, 1 image,
  VGG at 64 px."""
  c.generator = f"{GOLDEN}/pggan_golden32_generator.pth"
  c.vgg = f"{GOLDEN}/vgg16_features16_seed0.pth"
  c.steps, c.chunk = steps, 5
  c.max_images = 1
  c.loss.vgg_size = 64
  return c


def _execution(c, images: str):
  """The execution fields (not hashed) every config has, as in :func:`base`."""
  c.images = images
  c.max_images = 0
  c.batch = 8
  c.chunk = 50
  c.save_images = True
  c.lpips = ""
  c.model_cache = ""
  return c


def style_base() -> ml_collections.ConfigDict:
  """Inversion in a StyleGAN / StyleGAN2 space (``method = "style"``,
  :class:`jaxinv.inversion.style_spaces.Method`); ``codes`` and ``layer`` apply to ``space = "multi"``."""
  c = ml_collections.ConfigDict()
  # --- experiment (hashed into config_hash)
  c.method = "style"
  c.generator = f"{GOLDEN_ROSINALITY}/stylegan2_32px_ckpt.pt"   # StyleGAN / StyleGAN2 checkpoint or model dir
  c.space = "multi"                # z | w | wp | multi
  c.codes = 4                      # multi: N codes
  c.layer = 4                      # multi: composing layer ℓ (a synthesis unit index, 3k+1 = 4·2^k px)
  c.code_space = "wp"              # multi: each code is a w (repeated) or a w+
  c.init_spread = 0.1              # multi: codes start at w_avg + spread·(mapping(z_j) - w_avg)
  c.truncation_psi = 1.0           # z / w spaces: ψ (1 = none)
  c.noise = "const"                # const (stored buffers) | zero
  c.task = "reconstruct"           # reconstruct | colorize | super-resolve | inpaint | denoise
  c.task_args = ml_collections.ConfigDict({"factor": None, "downsample": "bilinear", "mask": None,
                                           "sigma": None})
  c.steps = 1000
  c.optimizer = "adam"             # sgd | adam
  c.lr = 0.05
  c.loss = ml_collections.ConfigDict({
      "loss": "combine", "l1_lambda": 0.0, "l2_lambda": 1.0, "vgg_lambda": 1.0,
      "vgg_layer": 16, "vgg_size": 256, "vgg_loss": "l1"})
  c.vgg = "imagenet-vgg16"
  c.seed = 0                       # init of an image: fold_in(PRNGKey(seed), crc32(image name))
  c.image_loader = "mganprior"
  # --- execution (not hashed)
  return _execution(c, f"{DATA}/face")


def dgp_base() -> ml_collections.ConfigDict:
  """DGP restoration with generator fine-tuning (``method = "dgp"``,
  :class:`jaxinv.inversion.methods.dgp.Method`)."""
  c = ml_collections.ConfigDict()
  # --- experiment (hashed into config_hash)
  c.method = "dgp"
  c.generator = "models/dgp/G_ema_128.pth"   # DGP's BigGAN G (checkpoint or converted dir)
  c.discriminator = "models/dgp/D_128.pth"   # its discriminator
  c.schedule = "in128_SR_D_biased"  # a schedule of jaxinv/assets/dgp_schedules, or a .json file
  c.mode = ""                       # "" = the schedule's mode; else SR | colorization | inpainting | hybrid
  c.iterations = ml_collections.FieldReference(None, field_type=list)   # per stage (one = every stage); None = the schedule's
  c.select_num = -1                 # candidates of the z search (-1 = the schedule's)
  c["class"] = -1                   # ImageNet class of every image (-1 = unknown: searched with z)
  c.labels = ""                     # JSON naming images' classes ({"images": {file: {"class": c}}} or {file: c})
  c.seed = 0                        # an image's candidates: fold_in(PRNGKey(seed), crc32(image name))
  # --- execution (not hashed)
  return _execution(c, DGP_DATA)


def dgp_runlocal(c, iterations: int = 3, select_num: int = 2):
  """Shrinks a DGP config to the golden tiny 128 px BigGAN (10 classes), ``iterations`` steps per
  stage, ``select_num`` candidates, 1 image, classes searched."""
  c.generator = f"{GOLDEN_DGP}/G_ema_tiny128.pth"
  c.discriminator = f"{GOLDEN_DGP}/D_tiny128.pth"
  c.iterations = [iterations]
  c.select_num = select_num
  c["class"], c.labels = -1, ""
  c.max_images = 1
  return c


def projector_base() -> ml_collections.ConfigDict:
  """The StyleGAN2 projector (``method = "projector"``,
  :class:`jaxinv.inversion.methods.projector.Method`): the projector script's defaults."""
  c = ml_collections.ConfigDict()
  # --- experiment (hashed into config_hash)
  c.method = "projector"
  c.generator = f"{GOLDEN_ROSINALITY}/stylegan2_32px_ckpt.pt"   # StyleGAN2 checkpoint or model dir
  c.space = "w"                    # w | wp (the script's --w_plus)
  c.image_loss = "lpips"           # lpips (the script's) | mse
  c.lpips_net = "vgg"              # built-in LPIPS (vgg, as the script) or a converted LPIPS dir
  c.steps = 1000
  c.lr = 0.1
  c.seed = 0                       # w statistics from the seed; noise maps and ε from the image's key
  c.image_loader = "psp"
  # --- execution (not hashed)
  return _execution(c, f"{DATA}/face")


def projector_sizes(c, runlocal: bool, test: bool):
  """The projector configs' small variants: ``runlocal`` 50 steps on 2 images, ``test`` 3 steps on
  1 image in batches of 1."""
  if runlocal or test:
    c.steps, c.chunk = 50, 25
    c.max_images = 2
  if test:
    c.steps, c.chunk = 3, 2
    c.max_images = 1
    c.batch = 1


def nvidia_projector_base() -> ml_collections.ConfigDict:
  """NVIDIA's ``projector.py`` (``method = "nvidia-projector"``,
  :class:`jaxinv.inversion.methods.projector.NvidiaMethod`) on StyleGAN2 / StyleGAN3 pickles: its
  defaults (one w, LPIPS-VGG feature distance, 1000 steps, lr 0.1); images loaded as
  ``jaxinv invert --method nvidia-projector`` loads them."""
  c = projector_base()
  c.method = "nvidia-projector"
  c.generator = "models/stylegan2-ffhq-1024x1024.pkl"   # NVIDIA network pickle or model dir
  c.lpips_net = "vgg"              # LPIPS-VGG (built-in, or a converted LPIPS-VGG dir)
  del c["image_loader"]
  return c


def idinvert_base() -> ml_collections.ConfigDict:
  """In-domain GAN inversion (``method = "idinvert"``, :class:`jaxinv.inversion.methods.idinvert.Method`):
  Adam from the encoder's ``E(x)``, loss ``pix·MSE + feat·VGG + reg·|wp - E(G(wp))|²`` (reg = λ)."""
  c = ml_collections.ConfigDict()
  # --- experiment (hashed into config_hash)
  c.method = "idinvert"
  c.generator = "models/styleganinv_ffhq256_generator.pth"   # IDInvert's StyleGAN (or PGGAN)
  c.encoder = "models/styleganinv_ffhq256_encoder.pth"       # its domain-guided encoder
  c.perceptual = "models/vgg16.pth"   # IDInvert's Keras-ported VGG16 ("" = none: feat_weight 0)
  c.steps = 100                    # the release's invert.py defaults
  c.lr = 0.01
  c.pix_weight = 1.0
  c.feat_weight = 5e-5
  c.reg_weight = 2.0               # λ: weight of the in-domain regulariser (0 = plain w+ from E(x))
  c.seed = 0                       # (IDInvert is deterministic: the image's key is unused)
  c.image_loader = "idinvert"
  # --- execution (not hashed)
  return _execution(c, IDINVERT_DATA)


GOLDEN_PADINV = "../shared/golden/padinv"


def padinv_base() -> ml_collections.ConfigDict:
  """PadInv (``method = "padinv"``, :class:`jaxinv.inversion.methods.padinv.Method`): the encoder's
  (w+, padding maps), then ``steps`` of Adam refinement (our extension; 0 = the official
  encoder-only inversion) on ``mse_weight·MSE + lpips_weight·LPIPS + wnorm_weight·||w+ - w_avg||``."""
  c = ml_collections.ConfigDict()
  # --- experiment (hashed into config_hash)
  c.method = "padinv"
  c.generator = "models/padinv/church_gan_checkpoint.pth"      # Hammer GAN checkpoint or converted dir
  c.encoder = "models/padinv/church_encoder_checkpoint.pth"    # PadInv encoder ("" = start from w_avg)
  c.space = "padding"              # padding (w+ and maps jointly) | wp (w+ alone, maps fixed)
  c.steps = 0                      # refinement steps (0 = encoder only)
  c.lr = 0.01
  c.mse_weight = 1.0
  c.lpips_weight = 0.8             # the released scripts' weights
  c.wnorm_weight = 0.0
  c.lpips_net = "alex"             # LPIPS of the loss: built-in alex / vgg, a converted dir or a lin file
  c.lpips_backbone = ""            # a lin file's AlexNet / VGG backbone checkpoint (converter option)
  c.seed = 0                       # (PadInv is deterministic: the image's key is unused)
  c.image_loader = "padinv"
  # --- execution (not hashed)
  return _execution(c, f"{DATA}/gan_inversion/church")


GOLDEN_NVIDIA = "../shared/golden/nvidia_stylegan"
GOLDEN_E4E_PTI = "../shared/golden/e4e_pti"


def pti_base() -> ml_collections.ConfigDict:
  """Pivotal tuning (``method = "pti"``, :class:`jaxinv.inversion.methods.pti.Method`): the w
  projector finds a pivot, then a copy of the generator per image is tuned around it; PTI's
  ``hyperparameters.py`` defaults."""
  c = ml_collections.ConfigDict()
  # --- experiment (hashed into config_hash)
  c.method = "pti"
  c.generator = "models/stylegan2-ffhq-config-f.pt"   # StyleGAN2 checkpoint or converted dir
  c.projector_steps = 450          # phase 1: w projector steps (first_inv_steps)
  c.pti_steps = 350                # phase 2: most tuning steps (the LPIPS early stop may end sooner)
  c.pti_lr = 3e-4
  c.lpips_threshold = 0.06         # phase 2 stops once LPIPS(G(pivot), x) <= this
  c.locality_reg = False           # the locality regulariser (off in PTI's stock settings)
  c.regulizer_l2_lambda = 0.1
  c.regulizer_lpips_lambda = 0.1
  c.regulizer_alpha = 30.0
  c.lpips_net = "alex"             # phase 2's LPIPS: built-in alex / vgg, a converted dir or a lin file
  c.lpips_backbone = ""            # a lin file's backbone checkpoint (converter option)
  c.projector_lpips = "vgg"        # phase 1's perceptual distance (NVIDIA's vgg16.pt is LPIPS-VGG)
  c.projector_lpips_backbone = ""
  c.seed = 0                       # an image's draws (noise maps, ε, the regulariser's z) from its key
  c.image_loader = "pti"
  # --- execution (not hashed)
  return _execution(c, f"{DATA}/face")
