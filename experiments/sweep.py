"""Sharded, resumable sweeps of inversions: ``python -m jaxinv.experiments.sweep --config C.py --out RUN_DIR``.

A config file defines ``get_config(arg)`` (an ``ml_collections.ConfigDict`` with
every knob, see ``experiments/configs/tiny.py``) and ``sweep(add)``, which calls
``add(key=value, ...)`` once per point (dotted keys reach nested fields, e.g.
``add(**{"loss.vgg_lambda": 0.1})``). ``--config C.py:ARG`` passes ``ARG``; a bare
``NAME[:ARG]`` names a config shipped in ``jaxinv.experiments.configs`` (``tiny``,
``mganprior_inversion``, ``stylegan2_multicode``, ``dgp_schedules``, ``idinvert_lambda``...).

Each point is one call of a driver method (:mod:`jaxinv.inversion.run`): its ``method``
field picks a builder (:data:`BUILDERS`) that turns the point into a method spec —
``mganprior`` (the default: a point without ``method``, so configs written before the field keep
their hashes; fields of ``configs/common.base``), ``style`` (z / w / w+ / multi-code on StyleGAN and
StyleGAN2, ``common.style_base``), ``dgp`` (``common.dgp_base``), ``idinvert``
(``common.idinvert_base``), ``projector`` (``common.projector_base``), ``padinv``
(``common.padinv_base``) or ``pti`` (``common.pti_base``) — and the sweep calls its
``run_batch(data, keys, ctx)`` with each image's key ``fold_in(PRNGKey(seed), crc32(image
name))`` and a checkpoint on the run's in-flight store, so a point's numbers are those
``jaxinv invert`` / :func:`jaxinv.inversion.run.run` give.

Relative paths in a config (models, images, masks) resolve against the working directory,
then against the data root ``$JAXINV_DATA_ROOT`` (default: the source checkout's root, so the
shipped configs' ``../shared/...`` is the ``shared/`` folder beside the clone). Model paths
may also name built-in models (``imagenet-vgg16``, ``alex``/``vgg`` for ``lpips``).

Each point × image is one work item. Points that differ only in their seed have
equal shapes and share one compiled program, so their items are batched
together; batches are sharded over the local devices (:mod:`jaxinv.sharding`)
and, with several processes (:mod:`jaxinv.distributed`), each process takes every
P-th image and loads only those.

Durability (see :mod:`experiments.runlog`): a finished batch appends its records to
``RUN_DIR/results.jsonl`` in one write; after every chunk of steps the batch's
optimiser state goes to an orbax checkpoint under ``RUN_DIR/inflight``. Rerunning
the same command skips finished items and continues in-flight batches from their
last chunk, so after a ``kill -9`` at any moment nothing finished is lost or
repeated and the final table equals an uninterrupted run's (same batches, same
chunk boundaries, same programs).

Record fields, every method: ``config_hash``, ``image``, ``method``, ``seed``, ``loss`` (the
objective before the last update), ``psnr`` / ``ssim`` (dB / Wang et al., of the restored output
vs the ground truth on the [-1, 1] scale, data range 2), ``lpips`` (when ``config.lpips`` names a
converted LPIPS model), ``generator``, ``steps``, ``task`` and the full ``setting``; then
mganprior: ``codes``, ``layer``, ``optimizer``, ``lr``, ``loss_type``; style: ``space``,
``optimizer``, ``lr``, ``loss_type`` (multi: ``codes``, ``layer``, ``code_space``); dgp
(``task`` = its mode): ``schedule``, ``iterations``, ``select_num``, ``class`` (the class used,
searched when unknown), DGP's own metrics ``dgp_psnr`` / ``dgp_ssim`` / ``dgp_l1_loss_origin`` /
``dgp_mse_loss_origin``; idinvert: ``optimizer``, ``lr``, ``pix_weight``, ``feat_weight``,
``reg_weight`` (λ) and ``encoder_psnr`` (the encoder-only reconstruction); projector: ``space``,
``image_loss``, ``optimizer``, ``lr``; padinv: ``space``, ``encoder`` (whether it starts from the
encoder), ``optimizer``, ``lr``, ``mse_weight``, ``lpips_weight``, ``wnorm_weight`` (``loss`` is NaN
for the encoder alone; PSNR / SSIM of the rendering resized (nearest) to the input's size, as
PadInv evaluates); pti (``steps`` = projector + most tuning steps): ``optimizer``,
``projector_steps``, ``pti_steps``, ``pti_lr``, ``locality_reg``, ``pti_steps_run`` (the tuning
steps taken before the LPIPS early stop), PSNR / SSIM of the tuned generator's render of its pivot.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import sys
import time
from typing import Any, Callable

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_DIR = os.path.join(_HERE, "configs")


def data_root() -> str | None:
  """``$JAXINV_DATA_ROOT``, else the source checkout's root (None for an installed package)."""
  env = os.environ.get("JAXINV_DATA_ROOT")
  if env:
    return env
  checkout = os.path.dirname(_HERE)
  return checkout if os.path.isfile(os.path.join(checkout, "setup.cfg")) else None


# Fields of a point that describe execution, not the experiment (not hashed).
EXECUTION_KEYS = ("images", "max_images", "batch", "chunk", "save_images", "lpips", "model_cache")


__all__ = ["load_config", "expand", "config_hash", "run_sweep", "main", "build", "method_of", "BUILDERS",
           "PointError"]


# ----------------------------------------------------------------------------- configs

def load_config(spec: str):
  """``path.py[:arg]`` → ``(base ConfigDict, [points as ConfigDicts])``."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path) and os.sep not in path and not path.endswith(".py"):
    path = os.path.join(CONFIG_DIR, f"{path}.py")
  if not os.path.isfile(path):
    known = sorted(f[:-3] for f in os.listdir(CONFIG_DIR)
                   if f.endswith(".py") and f not in ("__init__.py", "common.py"))
    raise SystemExit(f"--config {spec.partition(':')[0]}: no such file or shipped config "
                     f"(shipped: {', '.join(known)})")
  mod_spec = importlib.util.spec_from_file_location(f"_sweep_config_{abs(hash(path))}", path)
  mod = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(mod)
  base = mod.get_config(arg) if arg else mod.get_config()
  sweep_fn = getattr(mod, "sweep", None)
  return base, expand(base, sweep_fn)


def expand(base, sweep_fn=None) -> list:
  """The sweep's points: ``base`` overridden by each ``add(...)`` (just ``base`` without sweep)."""
  points = []

  def add(**overrides):
    cfg = copy.deepcopy(base)
    with cfg.unlocked() if hasattr(cfg, "unlocked") else _nullcontext():
      for key, value in overrides.items():
        parts = key.split(".")
        node = cfg
        for p in parts[:-1]:
          node = node[p]
        if parts[-1] not in node:
          raise KeyError(f"sweep sets {key!r}, which get_config() does not define")
        node[parts[-1]] = value
    points.append(cfg)

  if sweep_fn is None:
    add()
  else:
    sweep_fn(add)
  return points


class _nullcontext:
  def __enter__(self):
    return self

  def __exit__(self, *a):
    return False


def _plain(cfg) -> dict:
  return json.loads(cfg.to_json()) if hasattr(cfg, "to_json") else json.loads(json.dumps(cfg))


def setting_of(point) -> dict:
  """The experiment-defining part of a point (what the hash covers)."""
  d = _plain(point)
  return {k: v for k, v in sorted(d.items()) if k not in EXECUTION_KEYS}


def config_hash(setting: dict) -> str:
  return hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:12]


def _resolve(path: str) -> str:
  root = data_root()
  if not path or os.path.isabs(path) or os.path.exists(path) or root is None:
    return path
  alt = os.path.join(root, path)
  return alt if os.path.exists(alt) else path


# ----------------------------------------------------------------------------- resources

def _digest_file(path):
  st = os.stat(path)
  return hashlib.sha256(f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:10]


@functools.lru_cache(maxsize=None)
def load_model_cached(path: str, cache_dir: str, options: tuple = ()):
  """A model dir as is; a checkpoint file converted once into ``cache_dir`` (then loaded).

  Every process of a multi-process run shares ``cache_dir``. ``options``: ``(name, value)`` pairs
  for the converter (``jaxinv convert --option``), e.g. a PadInv encoder's ``gan_checkpoint`` or
  an LPIPS lin file's ``backbone``."""
  from jaxinv import converters, distributed
  from jaxinv.models.registry import BUILTIN_WEIGHTS, LPIPS_NETS, load_model, model_from_converted
  if path in BUILTIN_WEIGHTS or path in LPIPS_NETS:
    return load_model(path, expect_family="lpips" if path in LPIPS_NETS else None)
  path = _resolve(path)
  if os.path.isdir(path):
    return load_model(path)
  if not os.path.isfile(path):
    raise SystemExit(f"model {path}: no such file or directory (relative paths resolve against "
                     "the working directory, then $JAXINV_DATA_ROOT)")
  tag = _digest_file(path)
  if options:
    tag += "-" + hashlib.sha256(json.dumps(list(options)).encode()).hexdigest()[:6]
  dest = os.path.join(cache_dir, f"{os.path.splitext(os.path.basename(path))[0]}-{tag}")
  if not os.path.isdir(dest):
    if distributed.process_info().index != 0:
      # The first process fills the shared cache; the others convert for themselves in memory
      # until it has (orbax writes a model's arrays from the first process only).
      result, _ = converters.convert(path, **dict(options))
      return model_from_converted(result, path)
    os.makedirs(cache_dir, exist_ok=True)
    try:
      converters.convert_file(path, dest, **dict(options))
    except (OSError, ValueError):
      if not os.path.isdir(dest):   # not another run winning the (atomic) race: a real error
        raise
  return load_model(dest)


def list_images(spec, max_images: int) -> list[str]:
  from jaxinv.io import images as image_io
  specs = [spec] if isinstance(spec, str) else list(spec)
  return image_io.list_images([_resolve(s) for s in specs],
                              max_images if max_images and max_images > 0 else None)


@functools.lru_cache(maxsize=None)
def _task(name: str, resolution: int, args_json: str, seed: int):
  # Cached: equal tasks must be the same object so the loss function (and program) is shared.
  import jax
  from jaxinv import tasks
  args = json.loads(args_json)
  if args.get("mask"):
    args["mask"] = _resolve(args["mask"])
  key = jax.random.PRNGKey(seed) if name == "denoise" else None
  return tasks.make_task(name, resolution, key=key, **{k: v for k, v in args.items() if v is not None})


def _loss_config(loss, compute_dtype):
  from jaxinv.inversion import objectives
  return objectives.LossConfig(
      loss=loss["loss"], l1_lambda=loss["l1_lambda"], l2_lambda=loss["l2_lambda"],
      vgg_lambda=loss["vgg_lambda"],
      vgg=objectives.VGGLossConfig(num_modules=loss["vgg_layer"], size=loss["vgg_size"],
                                   kind=loss["vgg_loss"], compute_dtype=compute_dtype))


# ----------------------------------------------------------------------------- methods
#
# A point's ``method`` (absent: "mganprior", so configs written before methods were named keep
# their hashes) picks a builder that turns the point into a driver method spec
# (:mod:`jaxinv.inversion.run`) plus what the sweep needs around it: how to load an image's
# per-image data and ground truth, how to turn the method's output into the restored image the
# metrics score, and the record fields that describe the point.


@dataclasses.dataclass
class Built:
  """A point's method spec and the sweep's glue around it (shared by every seed of the point)."""
  method: Any                                  # a driver method: name, settings(), run_batch
  load: Callable[[list], tuple[dict, np.ndarray]]   # paths -> (per-image data, ground truth [b, H, W, 3])
  restored: Callable[[Any, np.ndarray], np.ndarray]  # (BatchOutput, ground truth) -> what is scored
  fields: dict                                 # record fields of the point (besides the common ones)
  # (BatchOutput, ground truth, i) -> extra record fields of image i
  per_image: Callable[[Any, np.ndarray, int], dict] = lambda out, gt, i: {}


def method_of(point) -> str:
  """A point's method; a point without the field is mGANprior's."""
  return point.get("method", "mganprior") if hasattr(point, "get") else "mganprior"


def _image_task(point, resolution):
  return _task(point.task, resolution, json.dumps(_plain(point.task_args), sort_keys=True), point.seed)


def _image_glue(point, resolution, task):
  """Loading and scoring of the methods that invert a task's observation of an image."""
  import jax.numpy as jnp
  from jaxinv.io import images as image_io

  def load(paths):
    gt = image_io.load_images(paths, resolution, point.image_loader)
    return {"observation": np.asarray(task.observe(jnp.asarray(gt)))}, gt

  def restored(out, gt):
    return np.asarray(task.restore(np.asarray(out.images[""]), gt))
  return load, restored


def _build_mganprior(point, cache):
  from jaxinv.inversion.methods import mganprior
  model = load_model_cached(point.generator, cache)
  task = _image_task(point, model.config.resolution)
  loss_cfg = _loss_config(_plain(point.loss), point.compute_dtype)
  vgg_params = load_model_cached(point.vgg, cache).params if loss_cfg.needs_vgg else None
  cfg = mganprior.MGANpriorConfig(codes=int(point.codes), layer=int(point.layer), loss=loss_cfg,
                                  optimizer=point.optimizer, lr=float(point.lr),
                                  steps=int(point.steps), init=point.init)
  method = mganprior.Method(model.module, model.params, cfg, vgg_params, task.degrade,
                            compute_dtype=point.compute_dtype)
  load, restored = _image_glue(point, model.config.resolution, task)
  fields = {"task": point.task, "codes": int(point.codes), "layer": int(point.layer),
            "optimizer": point.optimizer, "lr": float(point.lr), "loss_type": point.loss.loss}
  return Built(method, load, restored, fields)


def _build_style(point, cache):
  from jaxinv.inversion import style_spaces
  model = load_model_cached(point.generator, cache)
  if model.family not in ("stylegan", "stylegan2"):
    raise ValueError(f"method 'style' inverts StyleGAN / StyleGAN2 generators; {point.generator} "
                     f"is a {model.family} model")
  if getattr(model.config, "c_dim", 0):
    raise ValueError(f"{point.generator} is conditional; the sweep inverts unconditional generators")
  multi = point.space == "multi"
  if multi:
    model.config.check_layer(int(point.layer), allow_ends=False)
  space = style_spaces.StyleSpace(
      point.space, truncation_psi=float(point.truncation_psi), noise=point.noise,
      layer=int(point.layer) if multi else 0, num_codes=int(point.codes) if multi else 1,
      code_space=point.code_space, init_spread=float(point.init_spread))
  task = _image_task(point, model.config.resolution)
  loss_cfg = _loss_config(_plain(point.loss), "float32")
  vgg_params = load_model_cached(point.vgg, cache).params if loss_cfg.needs_vgg else None
  method = style_spaces.Method(model.module, model.params, space, loss_cfg, point.optimizer,
                               float(point.lr), int(point.steps), vgg_params, task.degrade)
  load, restored = _image_glue(point, model.config.resolution, task)
  fields = {"task": point.task, "space": point.space, "optimizer": point.optimizer,
            "lr": float(point.lr), "loss_type": point.loss.loss}
  if multi:
    fields.update(codes=int(point.codes), layer=int(point.layer), code_space=point.code_space)
  return Built(method, load, restored, fields)


DGP_MANIPULATIONS = ("jitter", "morphing", "category_transfer")


def _dgp_schedule(point):
  from jaxinv.inversion.methods import dgp
  path = _resolve(point.schedule) if point.schedule.endswith(".json") else point.schedule
  sched = dgp.load_schedule(path)
  over = {}
  if point.mode:
    over["dgp_mode"] = point.mode
    over["factor"] = 2 if point.mode == "hybrid" else sched.factor
  if point.select_num is not None and point.select_num >= 0:
    over["select_num"] = int(point.select_num)
  if point.iterations is not None:
    its = [int(n) for n in point.iterations]
    its = its * len(sched.stages) if len(its) == 1 else its
    if len(its) != len(sched.stages) or min(its) < 0:
      raise ValueError(f"iterations: {len(sched.stages)} non-negative counts (one per stage of "
                       f"{point.schedule}) or one for every stage; got {list(point.iterations)}")
    over["stages"] = tuple(dataclasses.replace(s, iterations=n) for s, n in zip(sched.stages, its))
  sched = dataclasses.replace(sched, **over)
  if sched.dgp_mode in DGP_MANIPULATIONS:
    raise ValueError(f"DGP mode {sched.dgp_mode!r} is a manipulation; the sweep scores "
                     "restorations and reconstructions (SR, colorization, inpainting, hybrid, ...)")
  return sched


def _dgp_classes(point, paths, n_classes):
  """One class per image: ``labels`` (a JSON file naming each image's class) else ``class``."""
  classes = [int(point["class"])] * len(paths)
  if point.labels:
    with open(_resolve(point.labels)) as f:
      table = json.load(f)
    table = table.get("images", table)
    for i, p in enumerate(paths):
      entry = table.get(os.path.basename(p))
      c = entry.get("class") if isinstance(entry, dict) else entry
      if c is not None:
        classes[i] = int(c)
  for p, c in zip(paths, classes):
    if c >= n_classes:
      raise ValueError(f"class {c} of {os.path.basename(p)} is outside this generator's "
                       f"{n_classes} classes")
  return np.asarray(classes, np.int32)


def _build_dgp(point, cache):
  from jaxinv.inversion.methods import dgp
  g = load_model_cached(point.generator, cache)
  d = load_model_cached(point.discriminator, cache)
  if g.family != "biggan" or d.family != "biggan_d":
    raise ValueError(f"method 'dgp' needs a BigGAN generator and discriminator; got {g.family} "
                     f"({point.generator}) and {d.family} ({point.discriminator})")
  res = g.config.resolution
  if d.config.resolution != res:
    raise ValueError(f"discriminator is {d.config.resolution}px but the generator is {res}px")
  sched = _dgp_schedule(point)
  method = dgp.Method(g.module, g.params, d.module, d.params, sched)

  def load(paths):
    origins = np.stack([dgp.load_image(_resolve(p), res) for p in paths])
    return {"origin": origins, "class": _dgp_classes(point, paths, g.config.n_classes)}, origins

  def restored(out, gt):
    return np.asarray(out.images[""])

  def per_image(out, gt, i):
    return {f"dgp_{k[len('metric_'):]}": float(v[i]) for k, v in sorted(out.arrays.items())
            if k.startswith("metric_")} | {"class": int(out.arrays["y"][i])}
  fields = {"task": sched.dgp_mode, "schedule": point.schedule, "select_num": sched.select_num,
            "iterations": [s.iterations for s in sched.stages]}
  return Built(method, load, restored, fields, per_image)


@functools.lru_cache(maxsize=None)
def _idinvert_models(generator: str, encoder: str, perceptual: str, cache: str):
  # Cached: the points of a λ sweep share the networks' functions (and their compiled programs).
  from jaxinv.inversion.methods import idinvert
  gen = load_model_cached(generator, cache)
  enc = load_model_cached(encoder, cache)
  if gen.family not in ("stylegan", "pggan") or enc.family != "idinvert-encoder":
    raise ValueError(f"method 'idinvert' needs an IDInvert StyleGAN (or PGGAN) and its encoder; "
                     f"got {gen.family} ({generator}) and {enc.family} ({encoder})")
  vgg = load_model_cached(perceptual, cache) if perceptual else None
  if vgg is not None and vgg.family != "keras-vgg16":
    raise ValueError(f"perceptual {perceptual} is a {vgg.family} model; IDInvert's is keras-vgg16")
  return idinvert.models_from(gen, enc, vgg)


def _build_idinvert(point, cache):
  from jaxinv import metrics
  from jaxinv.inversion.methods import idinvert
  from jaxinv.io import images as image_io
  if not point.perceptual and point.feat_weight != 0:
    raise ValueError("feat_weight needs perceptual (IDInvert's converted VGG16); or set feat_weight 0")
  models = _idinvert_models(point.generator, point.encoder, point.perceptual, cache)
  cfg = idinvert.IDInvertSettings(steps=int(point.steps), learning_rate=float(point.lr),
                                  pix_weight=float(point.pix_weight),
                                  feat_weight=float(point.feat_weight),
                                  reg_weight=float(point.reg_weight))

  def load(paths):
    gt = image_io.load_images(paths, models.resolution, point.image_loader)
    return {"x": gt}, gt

  def restored(out, gt):
    return np.asarray(out.images[""])

  def per_image(out, gt, i):   # the encoder's reconstruction E(x), where the optimisation starts
    return {"encoder_psnr": float(metrics.psnr(out.images["encoder"][i], gt[i], data_range=2.0))}
  fields = {"task": "reconstruct", "optimizer": "adam", "lr": float(point.lr),
            "pix_weight": float(point.pix_weight), "feat_weight": float(point.feat_weight),
            "reg_weight": float(point.reg_weight)}
  return Built(idinvert.Method(models, cfg), load, restored, fields, per_image)


def _build_projector(point, cache, nvidia: bool = False):
  from jaxinv.inversion.methods import projector as proj
  from jaxinv.io import images as image_io
  name = method_of(point)
  model = load_model_cached(point.generator, cache)
  families = ("stylegan2", "stylegan3") if nvidia else ("stylegan2",)
  if model.family not in families or getattr(model.config, "c_dim", 0):
    raise ValueError(f"method {name!r} projects into unconditional {' or '.join(families)} "
                     f"generators; {point.generator} is a {model.family} model"
                     + (" (conditional)" if getattr(model.config, "c_dim", 0) else ""))
  spaces = ("w",) if nvidia else ("w", "wp")
  if point.space not in spaces or point.image_loss not in ("lpips", "mse"):
    raise ValueError(f"method {name!r} optimises space {' or '.join(spaces)} with image_loss lpips "
                     f"or mse; got {point.space!r}, {point.image_loss!r}")
  if nvidia:
    cfg = proj.ProjectorConfig.nvidia(steps=int(point.steps), lr=float(point.lr),
                                      image_loss=point.image_loss, lpips_net="vgg",
                                      seed=int(point.seed))
  else:
    cfg = proj.ProjectorConfig(steps=int(point.steps), lr=float(point.lr),
                               w_plus=point.space == "wp", image_loss=point.image_loss,
                               seed=int(point.seed))
  lpips_params = None
  if cfg.image_loss == "lpips":
    lp = load_model_cached(point.lpips_net, cache)
    if lp.family != "lpips":
      raise ValueError(f"lpips_net {point.lpips_net} is a {lp.family} model, not LPIPS")
    if nvidia and lp.config.get("net", "vgg") != "vgg":
      raise ValueError(f"lpips_net {point.lpips_net}: NVIDIA's projector uses LPIPS-VGG, not "
                       f"{lp.config.get('net')}")
    lpips_params = lp.params
    cfg = dataclasses.replace(cfg, lpips_net=lp.config["net"])
  method = (proj.NvidiaMethod if nvidia else proj.Method).create(model.module, model.params, cfg,
                                                                 lpips_params)
  res = model.config.resolution
  loader = {} if nvidia else {"loader": point.image_loader}   # as jaxinv invert loads them

  def load(paths):
    gt = image_io.load_images(paths, res, **loader)
    target = gt if res <= 256 else image_io.load_images(paths, 256, **loader)
    return {"target": target}, gt

  def restored(out, gt):
    return np.asarray(out.images[""])
  fields = {"task": "reconstruct", "space": point.space, "image_loss": point.image_loss,
            "optimizer": "adam", "lr": float(point.lr)}
  if nvidia:
    fields["family"] = model.family
  return Built(method, load, restored, fields)


def _build_nvidia_projector(point, cache):
  return _build_projector(point, cache, nvidia=True)


def _converter_options(**options):
  """``(name, value)`` pairs of the converter options that are set (paths resolved)."""
  return tuple(sorted((k, _resolve(v)) for k, v in options.items() if v))


@functools.lru_cache(maxsize=None)
def _lpips_distance(net: str):
  # Cached: the points of a sweep share one LPIPS function, so PadInv's loss (and program) is shared.
  from jaxinv.models import lpips
  return lambda p, x, y: lpips.lpips_distance(p, x, y, net=net)


def _build_padinv(point, cache):
  from jaxinv.inversion.methods import padinv
  from jaxinv.io import images as image_io
  gen = load_model_cached(point.generator, cache)
  if gen.family != "padinv-stylegan2":
    raise ValueError(f"method 'padinv' needs a PadInv (Hammer StyleGAN2) generator; "
                     f"{point.generator} is a {gen.family} model")
  enc = None
  if point.encoder:
    # A PadInv encoder checkpoint lacks the average w: the converter takes it from the generator's.
    gan = point.generator if os.path.isfile(_resolve(point.generator)) else ""
    enc = load_model_cached(point.encoder, cache, _converter_options(gan_checkpoint=gan))
    if enc.family != "padinv-encoder":
      raise ValueError(f"encoder {point.encoder} is a {enc.family} model, not a PadInv encoder")
  steps = int(point.steps)
  if steps < 0 or not float(point.lr) > 0:
    raise ValueError(f"steps must be >= 0 and lr > 0; got steps {steps}, lr {point.lr}")
  if enc is None and steps == 0:
    raise ValueError("without an encoder PadInv starts from the average w: set steps > 0 "
                     "(or name the encoder)")
  cfg = padinv.PadInvSettings(steps=steps, space=point.space, lr=float(point.lr),
                              mse_weight=float(point.mse_weight),
                              lpips_weight=float(point.lpips_weight) if steps else 0.0,
                              wnorm_weight=float(point.wnorm_weight))
  lpips_fn = lpips_params = None
  if cfg.lpips_weight:
    lp = load_model_cached(point.lpips_net, cache,
                           _converter_options(backbone=point.lpips_backbone))
    if lp.family != "lpips":
      raise ValueError(f"lpips_net {point.lpips_net} is a {lp.family} model, not LPIPS")
    lpips_fn, lpips_params = _lpips_distance(lp.config["net"]), lp.params
  method = padinv.Method(gen, cfg, enc, lpips_fn, lpips_params)
  res = enc.config.resolution if enc is not None else gen.config.resolution

  def load(paths):
    gt = image_io.load_images(paths, res, point.image_loader)
    return {"x": gt}, gt

  def restored(out, gt):   # PadInv's protocol: the rendering resized (nearest) to the input's size
    img = np.asarray(out.images[""])
    return img if img.shape[1:3] == gt.shape[1:3] else np.asarray(
        padinv.resize_nearest(img, gt.shape[1:3]))
  fields = {"task": "reconstruct", "space": point.space, "encoder": bool(point.encoder),
            "optimizer": "adam", "lr": float(point.lr), "mse_weight": float(point.mse_weight),
            "lpips_weight": cfg.lpips_weight, "wnorm_weight": float(point.wnorm_weight)}
  return Built(method, load, restored, fields)


@functools.lru_cache(maxsize=None)
def _pti_losses(net: str, backbone: str, projector_net: str, projector_backbone: str, cache: str):
  # Cached: the points of a sweep share the LPIPS functions (PTI's program is keyed on them).
  from jaxinv.inversion.methods import pti
  models = []
  for name, path, bb in (("lpips_net", net, backbone),
                         ("projector_lpips", projector_net, projector_backbone)):
    lp = load_model_cached(path, cache, _converter_options(backbone=bb))
    if lp.family != "lpips":
      raise ValueError(f"{name} {path} is a {lp.family} model, not LPIPS")
    models.append(lp)
  tune, project = models
  return (lambda a, b: tune.module.apply({"params": tune.params}, a, b),
          pti.lpips_features(project.module, project.params))


@functools.lru_cache(maxsize=None)
def _pti_method(generator, cfg, net, backbone, projector_net, projector_backbone, cache):
  # Cached: a point built twice (the sweep, a check against the driver) is one method, whose
  # compiled program (keyed on the method and the mesh) is reused.
  from jaxinv.inversion.methods import pti
  model = load_model_cached(generator, cache)
  lpips_fn, features = _pti_losses(net, backbone, projector_net, projector_backbone, cache)
  return pti.Method(model.module, model.params, cfg, features, lpips_fn)


def _build_pti(point, cache):
  from jaxinv.inversion.methods import pti
  from jaxinv.io import images as image_io
  model = load_model_cached(point.generator, cache)
  if model.family != "stylegan2" or getattr(model.config, "c_dim", 0):
    raise ValueError(f"method 'pti' tunes unconditional StyleGAN2 generators; {point.generator} "
                     f"is a {model.family} model")
  if int(point.projector_steps) < 1 or int(point.pti_steps) < 1 or not float(point.pti_lr) > 0:
    raise ValueError(f"projector_steps and pti_steps must be >= 1 and pti_lr > 0; got "
                     f"{point.projector_steps}, {point.pti_steps}, {point.pti_lr}")
  cfg = pti.PTIConfig(first_inv_steps=int(point.projector_steps), max_pti_steps=int(point.pti_steps),
                      pti_learning_rate=float(point.pti_lr),
                      lpips_value_threshold=float(point.lpips_threshold),
                      use_locality_regularization=bool(point.locality_reg),
                      regulizer_l2_lambda=float(point.regulizer_l2_lambda),
                      regulizer_lpips_lambda=float(point.regulizer_lpips_lambda),
                      regulizer_alpha=float(point.regulizer_alpha))
  method = _pti_method(point.generator, cfg, point.lpips_net, point.lpips_backbone,
                       point.projector_lpips, point.projector_lpips_backbone, cache)
  res = model.config.resolution

  def load(paths):
    gt = image_io.load_images(paths, res, point.image_loader)
    return {"image": gt}, gt

  def restored(out, gt):   # the tuned generator's render of its pivot
    return np.asarray(out.images[""])

  def per_image(out, gt, i):
    return {"pti_steps_run": int(out.arrays["steps"][i])}
  fields = {"task": "reconstruct", "optimizer": "adam", "projector_steps": cfg.first_inv_steps,
            "pti_steps": cfg.max_pti_steps, "pti_lr": cfg.pti_learning_rate,
            "locality_reg": cfg.use_locality_regularization}
  return Built(method, load, restored, fields, per_image)


BUILDERS = {"mganprior": _build_mganprior, "style": _build_style, "dgp": _build_dgp,
            "idinvert": _build_idinvert, "projector": _build_projector,
            "nvidia-projector": _build_nvidia_projector,
            "padinv": _build_padinv, "pti": _build_pti}


class PointError(ValueError):
  """A point the sweep cannot run (unknown method, a layer outside the generator, a missing
  schedule, mismatched models...): raised before any point runs."""


def build(point, cache: str) -> Built:
  """The driver method spec of ``point`` (and the sweep's glue around it)."""
  name = method_of(point)
  if name not in BUILDERS:
    raise ValueError(f"unknown method {name!r}; the sweep runs {', '.join(BUILDERS)}")
  return BUILDERS[name](point, cache)


def steps_of(point) -> int:
  if method_of(point) == "dgp":
    return _dgp_schedule(point).total_steps
  if method_of(point) == "pti":
    return int(point.projector_steps) + int(point.pti_steps)
  return int(point.steps)


# ----------------------------------------------------------------------------- the run

@dataclasses.dataclass
class Item:
  setting: dict
  chash: str
  image: str            # stem
  path: str
  index: int            # position in the full image list (order of the records only)

  @property
  def key(self):
    return (self.chash, self.image)


def _group_key(setting: dict) -> str:
  return json.dumps({k: v for k, v in setting.items() if k != "seed"}, sort_keys=True)


def plan(points, process_index=0, process_count=1):
  """Groups of items (one compiled program each) for this process, in a fixed order."""
  from jaxinv import sharding
  from jaxinv.io import images as image_io
  groups: dict[str, list[Item]] = {}
  for point in points:
    setting = setting_of(point)
    chash = config_hash(setting)
    paths = list_images(point.images, point.max_images)
    indexed = list(enumerate(paths))
    for index, path in sharding.process_shard(indexed, process_index, process_count):
      stem = image_io.image_stem(path)
      groups.setdefault(_group_key(setting), []).append(Item(setting, chash, stem, path, index))
  return list(groups.values())


def run_sweep(points, run_dir: str, progress: bool = True, log=print) -> list[dict]:
  """Runs (or resumes) every point × image not yet in ``run_dir``; returns this process's new records."""
  from jaxinv import distributed, sharding
  from jaxinv.experiments import runlog

  info = distributed.initialize()
  suffix = distributed.process_suffix(info)
  os.makedirs(run_dir, exist_ok=True)
  results_path = os.path.join(run_dir, f"results{suffix}.jsonl")
  _write_sweep_json(run_dir, points, info)
  groups = plan(points, info.index, info.count)
  done = {runlog.result_key(r) for r in runlog.read_results(run_dir)}
  store = runlog.InflightStore(run_dir)
  store.remove_finished(done, suffix)
  total = sum(len(g) for g in groups)
  todo = [[it for it in g if it.key not in done] for g in groups]
  remaining = sum(len(g) for g in todo)
  log(f"sweep {run_dir}: {len(points)} points, {total} items for process {info.index}/{info.count}; "
      f"{total - remaining} already done, {remaining} to run")
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(total=total, initial=total - remaining, desc="sweep", unit="item", dynamic_ncols=True)
  built = {}   # every point is built before any runs, so a bad one fails at once
  for group in todo:
    if group:
      point0 = _point_for(points, group[0].setting)
      try:
        built[id(group)] = build(point0, _model_cache(point0, run_dir))
      except (ValueError, FileNotFoundError) as e:
        raise PointError(f"point {group[0].chash} (method {method_of(point0)}): {e}") from e
  new = []
  t_start = time.time()
  try:
    for group in todo:
      if not group:
        continue
      point0 = _point_for(points, group[0].setting)
      mesh, batch = sharding.batch_plan(point0.batch, len(group))
      for start in range(0, len(group), batch):
        items = group[start:start + batch]
        recs = _run_batch(items, point0, built[id(group)], batch, mesh, run_dir, store, suffix,
                          progress)
        runlog.append_records(results_path, recs)
        store.remove(_batch_id(items, suffix))
        new.extend(recs)
        if bar is not None:
          bar.update(len(items))
        else:
          ran = len(new)
          el = time.time() - t_start
          eta = el / ran * (remaining - ran)
          log(f"{total - remaining + ran}/{total} items done; {el:.0f}s elapsed, ETA {eta:.0f}s")
  finally:
    if bar is not None:
      bar.close()
  return new


def _model_cache(point, run_dir):
  return point.model_cache or os.path.join(run_dir, "models")


def _point_for(points, setting):
  for p in points:
    if setting_of(p) == setting:
      return p
  raise KeyError("setting not in points")


def _write_sweep_json(run_dir, points, info):
  from jaxinv.io.checkpoints import atomic_write_json
  from jaxinv.io.results import run_metadata
  if info.index != 0:
    return
  atomic_write_json(os.path.join(run_dir, "sweep.json"), {
      "points": [{"config_hash": config_hash(setting_of(p)), "method": method_of(p), **_plain(p)}
                 for p in points],
      **run_metadata()})


def _batch_id(items, suffix):
  h = hashlib.sha256(json.dumps([it.key for it in items]).encode()).hexdigest()[:16]
  return f"batch-{h}{suffix}"


def _run_batch(items, point, built, batch, mesh, run_dir, store, suffix, progress):
  from jaxinv import metrics, sharding
  from jaxinv.inversion import run
  from jaxinv.io import images as image_io
  from jaxinv.io.inflight import BatchCheckpoint

  data, gt = built.load([it.path for it in items])
  keys = np.stack([np.asarray(run.image_key(it.setting["seed"], it.image)) for it in items])
  (data, keys), real = sharding.pad_to_multiple((data, keys), batch)
  batch_id = _batch_id(items, suffix)
  ctx = run.BatchContext(mesh, real, f"batch of {real}" if progress else False,
                         checkpoint=BatchCheckpoint(store, batch_id, [list(it.key) for it in items]),
                         chunk=point.chunk)
  out = built.method.run_batch(data, keys, ctx).trimmed(real)
  restored_out = built.restored(out, gt)
  loss = out.stepwise.get("loss")
  lp_model = load_model_cached(point.lpips, _model_cache(point, run_dir)) if point.lpips else None
  recs = []
  for i, it in enumerate(items):
    rec = {"config_hash": it.chash, "image": it.image, "method": method_of(point),
           "seed": int(it.setting["seed"]),
           "loss": float(loss[-1, i]) if loss is not None and len(loss) else float("nan"),
           "psnr": float(metrics.psnr(restored_out[i], gt[i], data_range=2.0)),
           "ssim": float(metrics.ssim(restored_out[i], gt[i], data_range=2.0)),
           "generator": point.generator, "steps": steps_of(point), **built.fields,
           **built.per_image(out, gt, i), "setting": it.setting}
    if lp_model is not None:
      rec["lpips"] = float(np.asarray(metrics.lpips(lp_model, restored_out[i], gt[i])).reshape(()))
    if point.save_images:
      d = os.path.join(run_dir, "images", it.chash)
      os.makedirs(d, exist_ok=True)
      image_io.save_png(os.path.join(d, f"{it.image}.png"), restored_out[i])
      td = os.path.join(run_dir, "images", "targets")
      os.makedirs(td, exist_ok=True)
      if not os.path.exists(os.path.join(td, f"{it.image}.png")):
        image_io.save_png(os.path.join(td, f"{it.image}.png"), gt[i])
    recs.append(rec)
  return recs


def main(argv=None):
  p = argparse.ArgumentParser(prog="python -m jaxinv.experiments.sweep", description=__doc__.splitlines()[0])
  p.add_argument("--config", required=True,
                 help="CONFIG.py[:ARG], or NAME[:ARG] of a shipped config (e.g. tiny:test)")
  p.add_argument("--out", required=True, help="run directory (created; rerun to resume)")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  from jaxinv import distributed
  distributed.initialize()
  try:
    _, points = load_config(args.config)
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    # A config's get_config(ARG) and sweep() reject unknown variants, options and keys.
    message = " ".join(str(e).strip("'\"").split())
    print(f"{p.prog}: error: --config {args.config}: {message}", file=sys.stderr)
    raise SystemExit(2) from None
  t0 = time.time()
  try:
    new = run_sweep(points, args.out, progress=not args.no_progress)
  except PointError as e:
    print(f"{p.prog}: error: --config {args.config}: {' '.join(str(e).split())}", file=sys.stderr)
    raise SystemExit(2) from None
  print(f"sweep done: {len(new)} new results in {time.time() - t0:.1f}s -> "
        f"{os.path.join(args.out, 'results*.jsonl')}", file=sys.stderr)


if __name__ == "__main__":
  main()
