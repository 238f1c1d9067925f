"""Style-generator options of ``jaxinv generate`` and ``jaxinv invert`` (StyleGAN, StyleGAN2).

``generate``: ``--space z|w|wp`` (latents ``[B, z_dim]``, ``[B, w_dim]`` or ``[B, L, w_dim]``),
``--truncation PSI --truncation-layers K`` (default: the model's recorded settings for z/w,
none for w+), ``--noise const|zero|random`` (default: the stored buffers; random uses --seed).
``invert``: ``--space z|w|wp|multi`` (multi uses ``--codes`` / ``--layer``), same truncation
and noise flags (const|zero).
"""

from __future__ import annotations

import numpy as np

from jaxinv.cli.common import UserError

FAMILIES = ("stylegan", "stylegan2", "stylegan3")
GENERATE_SPACES = ("z", "w", "wp")
INVERT_SPACES = ("z", "w", "wp", "multi", "padding")


def add_truncation_noise_args(p, noise_modes=("const", "zero", "random")):
  g = p.add_argument_group("style generators (StyleGAN, StyleGAN2)")
  g.add_argument("--truncation", type=float, default=None, metavar="PSI",
                 help="truncation psi for z / w latents (default: the model's recorded setting)")
  g.add_argument("--truncation-layers", type=int, default=None, metavar="K",
                 help="truncate the first K w+ rows (default: the model's recorded setting)")
  g.add_argument("--noise", default="const", choices=noise_modes,
                 help="per-layer noise: the stored buffers (const), zeros, or random from --seed")
  return g


def add_generate_args(p):
  g = add_truncation_noise_args(p)
  g.add_argument("--space", default="z", choices=GENERATE_SPACES,
                 help="what --latents holds: z [B,z_dim], w [B,w_dim] or w+ [B,L,w_dim]")
  g.add_argument("--seed", type=int, default=0, help="key for --noise random")
  g.add_argument("--labels", default=None, metavar="C.npy",
                 help="conditional generators (NVIDIA StyleGAN2-ADA): labels c [B, c_dim] for "
                      "z latents, any real vector (one-hot for a class)")


def _truncation(model, args, space):
  if space == "wp":
    psi = 1.0 if args.truncation is None else args.truncation
    layers = model.config.num_ws if args.truncation_layers is None else args.truncation_layers
    return psi, layers
  psi = model.extras.get("truncation_psi", 1.0) if args.truncation is None else args.truncation
  layers = model.extras.get("truncation_layers", model.config.num_ws) \
      if args.truncation_layers is None else args.truncation_layers
  if not 0 <= layers:
    raise UserError(f"--truncation-layers must be >= 0 (got {layers})")
  return float(psi), int(layers)


def generate(model, latents, args):
  """Images ``[B, R, R, C]`` (NHWC) from ``latents`` in ``args.space``."""
  import jax
  import jax.numpy as jnp
  cfg, m = model.config, model.module
  want = {"z": (cfg.z_dim,), "w": (cfg.w_dim,), "wp": (cfg.num_ws, cfg.w_dim)}[args.space]
  if latents.ndim != 1 + len(want) or tuple(latents.shape[1:]) != want:
    raise UserError(f"--latents has shape {latents.shape}; --space {args.space} on this "
                    f"{model.family} needs [B, {', '.join(map(str, want))}]")
  psi, layers = _truncation(model, args, args.space)
  x = jnp.asarray(latents, jnp.float32)
  c = _labels(model, getattr(args, "labels", None), args.space, latents.shape[0])
  noise = args.noise
  rngs = {"noise": jax.random.key(args.seed)} if noise == "random" else {}

  def run(params, x, c):
    v = {"params": params}
    w = m.apply(v, x, c, method=m.mapping) if args.space == "z" else x
    wp = m.apply(v, w, psi, layers, method=m.truncate)
    return m.apply(v, None, wp, 0, None, noise, method=m.synthesis, rngs=rngs)
  return np.asarray(jax.jit(run)(model.params, x, c), np.float32)


def _labels(model, path, space, batch):
  """Labels ``c [B, c_dim]`` of a conditional generator for z latents (None otherwise)."""
  c_dim = getattr(model.config, "c_dim", 0)
  if path is None:
    if c_dim and space == "z":
      raise UserError(f"this generator is conditional: pass --labels C.npy with labels "
                      f"[{batch}, {c_dim}] (one-hot rows for classes)")
    return None
  if not c_dim:
    raise UserError("--labels given, but this generator is unconditional; drop --labels")
  if space != "z":
    raise UserError("--labels only applies to z latents (--space z, or multi-code); w and w+ "
                    "latents already carry them")
  try:
    c = np.load(path)
  except (OSError, ValueError) as e:
    raise UserError(f"{path}: cannot read labels ({e})") from None
  if c.shape != (batch, c_dim) or c.dtype.kind not in "fiub":
    raise UserError(f"{path}: labels of shape {c.shape} ({c.dtype}); this generator needs "
                    f"real [{batch}, {c_dim}]")
  if not np.all(np.isfinite(c)):
    raise UserError(f"{path}: labels contain NaN or inf")
  return np.asarray(c, np.float32)


def add_invert_args(p):
  g = add_truncation_noise_args(p, noise_modes=("const", "zero"))
  g.add_argument("--space", default=None, choices=INVERT_SPACES,
                 help="style generators: z, w, w+ (wp, Image2StyleGAN) or multi-code at --layer "
                      "(default wp); PGGAN always uses mGANprior's multi-code z; "
                      "--method padinv: padding (default) or wp")
  g.add_argument("--labels", default=None, metavar="C.npy",
                 help="conditional generators: labels c [B, c_dim], one row per image (--space z "
                      "or multi)")
  g.add_argument("--code-space", default="wp", choices=("w", "wp"),
                 help="--space multi: each code is one w or a w+")


def _encoder_codes(args, model, space, paths):
  """``--init encoder --encoder E4E_DEST``: the e4e/pSp encoder's w+ codes ``[B, L, D]`` of the
  images, which seed the variables (:func:`style_spaces.init_from_codes`); None without it."""
  if getattr(args, "init", None) != "encoder":
    return None
  from jaxinv.cli.common import encoder_codes
  if space.kind not in ("wp", "multi") or (space.kind == "multi" and space.code_space != "wp"):
    raise UserError("--init encoder seeds --space wp, or --space multi with --code-space wp, from "
                    f"an encoder's w+ codes (got --space {space.kind}"
                    + (f" --code-space {space.code_space})" if space.kind == "multi" else ")"))
  if not getattr(args, "encoder", None):
    raise UserError("--init encoder needs --encoder E4E_DEST (a converted e4e/pSp checkpoint "
                    "trained for this generator)")
  if paths is None:
    raise UserError("--init encoder encodes the input image files")
  if getattr(args, "init_noise", None) is not None:
    raise UserError("--init-noise applies to mGANprior's --init encoder; w+ starts at the codes")
  return encoder_codes(args.encoder, "--encoder", model, paths, args.batch)


def invert_method(args, model, loss_cfg, vgg_params, num_images, degrade=None, paths=None):
  """``jaxinv invert`` on a style generator: ``(method spec, extra per-image data)``.

  ``paths``: the image files (``--init encoder`` encodes them with the encoder's own transform).
  """
  from jaxinv.inversion import style_spaces
  from jaxinv.models.layered import LayerIndexError
  space_kind = args.space or "wp"
  if space_kind == "padding":
    raise UserError("--space padding is PadInv's space: use --method padinv")
  labels = _labels(model, getattr(args, "labels", None), "z" if space_kind == "multi" else space_kind,
                   num_images)
  psi, layers = _truncation(model, args, space_kind)
  try:
    space = style_spaces.StyleSpace(space_kind, truncation_psi=psi, truncation_layers=layers,
                                    noise=args.noise, layer=args.layer, num_codes=args.codes,
                                    code_space=args.code_space)
    if space_kind == "multi":
      model.config.check_layer(args.layer, allow_ends=False)
  except (ValueError, LayerIndexError) as e:
    raise UserError(str(e)) from None
  codes = _encoder_codes(args, model, space, paths)
  method = style_spaces.Method(model.module, model.params, space, loss_cfg, args.optimizer,
                               float(args.lr), int(args.steps), vgg_params, degrade)
  data = {} if labels is None else {"c": labels}
  if codes is not None:
    data["code_wp"] = np.asarray(codes, np.float32)
  return method, data
