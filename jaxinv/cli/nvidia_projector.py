"""``jaxinv invert --method nvidia-projector``: NVIDIA's ``projector.py`` on StyleGAN2 / StyleGAN3.

w-space projection from ``w_avg`` (estimated from ``RandomState(123)`` z, as the script),
noise regularisation and renormalisation, lr ramps, w noise ramp
(:meth:`jaxinv.inversion.methods.projector.ProjectorConfig.nvidia`). The perceptual term is
LPIPS-VGG (``--loss lpips --lpips DEST``, the distance NVIDIA's vgg16.pt computes) or
``--loss mse``. Writes ``result.npz`` with ``w [B, num_ws, w_dim]`` (the projected w repeated,
as the script's output), the final ``noise{i}`` maps and ``loss [S, B]``, plus one PNG per image.
"""

from __future__ import annotations

import os

import numpy as np

from jaxinv.cli.common import UserError, load_generator, output_stems

W_AVG_SAMPLES = 10000
W_AVG_SEED = 123


def run_invert(args):
  import jax
  import jax.numpy as jnp
  from jaxinv.inversion.methods import projector as proj
  from jaxinv.inversion.optimize import NonFiniteLossError
  from jaxinv.io import images as image_io
  from jaxinv.io.results import write_config, write_npz
  model = load_generator(args.generator, families=("stylegan2", "stylegan3"))
  cfg_g = model.config
  if getattr(cfg_g, "c_dim", 0):
    raise UserError("nvidia-projector: conditional generators are not supported (projector.py "
                    "maps z without labels)")
  if args.loss not in ("lpips", "mse"):
    raise UserError("--method nvidia-projector takes --loss lpips (with --lpips DEST, LPIPS-VGG) "
                    "or --loss mse")
  lpips_params = None
  if args.loss == "lpips":
    if args.lpips is None:
      raise UserError("--loss lpips needs --lpips DEST (a converted LPIPS-VGG model)")
    lp = load_generator(args.lpips, families="lpips")
    if lp.config.get("net", "vgg") != "vgg":
      raise UserError(f"{args.lpips}: NVIDIA's projector uses LPIPS-VGG; this is {lp.config.get('net')}")
    lpips_params = lp.params
  steps = args.steps if args.steps is not None else 1000
  lr = args.lr if args.lr is not None else 0.1
  cfg = proj.ProjectorConfig.nvidia(steps=steps, lr=lr, image_loss=args.loss, lpips_net="vgg",
                                    seed=args.seed)
  try:
    paths = image_io.list_images(args.images)
    stems = output_stems(paths)
    targets = image_io.load_images(paths, min(cfg_g.resolution, 256))
  except image_io.ImageError as e:
    raise UserError(str(e)) from None
  m, params = model.module, model.params
  z = np.random.RandomState(W_AVG_SEED).randn(W_AVG_SAMPLES, cfg_g.z_dim).astype(np.float32)
  mean, std = proj.latent_stats(m, params, None, W_AVG_SAMPLES, z=jnp.asarray(z))
  key = jax.random.key(args.seed)
  noise_sizes = _noise_sizes(params)
  keys = jax.random.split(key, len(noise_sizes) + 1)
  b = len(targets)
  init = {"latent": jnp.broadcast_to(mean, (b, 1, cfg_g.w_dim)),
          "noises": tuple(jax.random.normal(keys[i], (b, 1, r, r)) for i, r in enumerate(noise_sizes))}
  try:
    out = proj.project(m, params, jnp.asarray(targets)[:, None], cfg, lpips_params=lpips_params,
                       key=keys[-1], init=init, latent_mean=mean, latent_std=std,
                       progress=f"nvidia-projector {b} images", chunk=args.chunk)
  except NonFiniteLossError as e:
    raise UserError(str(e)) from None
  w = np.asarray(out.variables["latent"])[:, 0]
  wp = np.broadcast_to(w[:, None], (b, cfg_g.num_ws, cfg_g.w_dim))
  os.makedirs(args.out, exist_ok=True)
  for stem, img in zip(stems, out.images[:, 0]):
    image_io.save_png(os.path.join(args.out, f"{stem}.png"), img)
  noises = {f"noise{i}": np.asarray(n)[:, 0] for i, n in enumerate(out.variables["noises"])}
  write_npz(os.path.join(args.out, "result.npz"), w=wp, loss=np.asarray(out.loss),
            names=np.asarray(stems), **noises)
  settings = {k: v for k, v in vars(args).items() if k != "func"}
  settings["images"] = paths
  write_config(args.out, settings)
  print(f"wrote {args.out}: {b} images ({model.family}, nvidia-projector); final loss "
        + ", ".join(f"{s} {l:.5g}" for s, l in zip(stems, np.asarray(out.loss)[-1])))


def _noise_sizes(params):
  """Sizes of the synthesis noise buffers (StyleGAN2 ``layer{i}/noise``; none for StyleGAN3)."""
  synth = params["synthesis"]
  sizes, i = [], 0
  while f"layer{i}" in synth and "noise" in synth[f"layer{i}"]:
    sizes.append(int(synth[f"layer{i}"]["noise"].shape[-1]))
    i += 1
  return sizes
