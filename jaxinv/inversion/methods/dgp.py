"""Deep Generative Prior (Pan et al., ECCV 2020): progressive reconstruction with generator fine-tuning.

Per image DGP optimises the latent ``z`` *and the BigGAN generator's weights* against a
degraded observation, stage by stage, unlocking generator blocks from shallow to deep:

1. **candidate search** (:func:`select_z`): ``select_num`` draws ``z ~ N(0, sample_std^2)``
   (and a random class if it is unknown), each scored by the discriminator-feature loss with
   ``ftr_num = 3`` between the *target-path* degradation of ``G(z, y)`` and the target; the
   best is kept;
2. **stages** (:func:`run`): stage ``s`` runs ``iterations[s]`` steps of
   ``w_D[s] * ftr_loss(ftr_num[s]) + w_mse[s] * mse + w_nll * mean(z^2 / 2)`` on the
   generator-path degradation of ``G(z, shared(y), use_in[s])``; both Adam optimisers use
   DGP's ``betas = (0, 0.999)``, ``eps = 1e-8``; G group ``i`` (0 = ``linear`` [+ ``shared``],
   i = GBlock i-1 with its attention) has lr ``G_lrs[s] * lr_ratio[s]**i`` if
   ``i < ft_num[s]`` else 0. Locked groups keep updating their Adam moments, as torch does,
   so the optimiser is :func:`make_optimizer`: an ``optax.multi_transform`` over group labels,
   each ``scale_by_adam`` followed by its per-step lr table (data, not code branches).

Batched per-image fine-tuning: B images optimise B generator copies in one jitted program.
The optimised variables are ``{"z": [B, dim_z], "G": G params with a leading [B] axis}``;
the one-image objective is ``vmap``-ed over them. Schedules are data
(:class:`Schedule`, ``jaxinv/assets/dgp_schedules/*.json``).

Every image starts from fresh optimiser state (as every golden fixture does). The official
``main.py`` keeps its Adam states alive across the images of a list; that couples an image's
result to its predecessors, which batched runs deliberately do not reproduce.

Memory (float32, from shapes: ``experiments/bench/dgp_memory.py``): per image the G copy,
Adam's two moments, the gradient and the saved activations of one step come to 96.5 MiB for
the fixture model (largest batch in 24 GiB: 254), 1.93 GiB for BigGAN-128 at ch 96 (batch 12)
and 2.73 GiB for BigGAN-256 (batch 9).

Images here are NHWC in [-1, 1]. ``degrade`` (generator path) and ``degrade_target``
(observed-image path, e.g. DGP's PIL Lanczos for SR) come from :mod:`jaxinv.tasks`.

References:
  Pan et al., Exploiting Deep Generative Prior for Versatile Image Restoration and
  Manipulation, https://arxiv.org/abs/2003.13659
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv import tasks
from jaxinv.models import biggan

__all__ = ["Stage", "Schedule", "load_schedule", "feature_loss", "degradation", "target_of",
           "make_optimizer", "select_z", "run", "DGPResult", "jitter", "morph",
           "category_transfer", "interpolate_params", "state_bytes_per_image", "invert",
           "load_image", "load_image_uint8", "metrics", "restore_l_channel", "hole_begin_end", "draw_candidates", "ftr_mask", "lr_table",
           "CONFIG_DIR"]

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "assets", "dgp_schedules")

#: Modes whose observation is degraded; every other mode (jitter, morphing, ...) reconstructs.
DEGRADING_MODES = ("SR", "colorization", "inpainting", "hybrid")


# ----------------------------------------------------------------------------- schedules


@dataclasses.dataclass(frozen=True)
class Stage:
  """One progressive stage of DGP."""
  iterations: int
  z_lr: float
  G_lr: float
  lr_ratio: float = 1.0     # group i gets G_lr * lr_ratio**i
  ft_num: int = 1           # groups [0, ft_num) get a non-zero lr
  w_D_loss: float = 1.0
  w_mse: float = 0.0
  ftr_num: int = 8          # number of *last* D features in the L1 feature loss
  use_in: bool = False      # DGP's instance-norm switch for this stage

  def group_lrs(self, num_groups: int) -> list[float]:
    return [self.G_lr * self.lr_ratio ** i if i < self.ft_num else 0.0
            for i in range(num_groups)]


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A DGP experiment: stages plus the settings shared by all of them."""
  stages: tuple
  w_nll: float = 0.02
  dgp_mode: str = "SR"       # SR | colorization | inpainting | hybrid | jitter | morphing | ...
  factor: int = 4            # SR factor (hybrid: 2)
  update_embed: bool = False  # group 0 also trains the shared class embedding
  update_G: bool = True
  select_num: int = 500
  sample_std: float = 1.0
  betas: tuple = (0.0, 0.999)
  eps: float = 1e-8

  @property
  def total_steps(self) -> int:
    return sum(s.iterations for s in self.stages)

  @classmethod
  def from_lists(cls, cfg: dict, **overrides) -> "Schedule":
    """From DGP's argparse form: per-stage lists (``iterations``, ``z_lrs``, ``G_lrs``, ...).

    Lists shorter than ``iterations`` repeat their last value, as DGP indexes them
    (``ftr_num``, ``w_D_loss``, ``w_mse`` are often given once).
    """
    n = len(cfg["iterations"])

    def at(key, s, default=None):
      v = cfg.get(key, default)
      if not isinstance(v, (list, tuple)):
        return v
      return v[min(s, len(v) - 1)]
    stages = tuple(Stage(int(at("iterations", s)), float(at("z_lrs", s)), float(at("G_lrs", s)),
                         float(at("lr_ratio", s, 1.0)), int(at("ft_num", s, 1)),
                         float(at("w_D_loss", s, 1.0)), float(at("w_mse", s, 0.0)),
                         int(at("ftr_num", s, 8)), bool(at("use_in", s, False)))
                   for s in range(n))
    kw = dict(stages=stages, w_nll=float(cfg.get("w_nll", 0.02)),
              dgp_mode=cfg.get("dgp_mode", "SR"), update_embed=bool(cfg.get("update_embed", False)),
              update_G=bool(cfg.get("update_G", True)),
              select_num=int(cfg.get("select_num", 500)),
              sample_std=float(cfg.get("sample_std", 1.0)),
              betas=(float(cfg.get("G_B1", 0.0)), float(cfg.get("G_B2", 0.999))))
    mode = kw["dgp_mode"]
    kw["factor"] = int(cfg.get("factor", 2 if mode == "hybrid" else 4))
    kw.update(overrides)
    return cls(**kw)

  def to_lists(self) -> dict:
    """The inverse of :meth:`from_lists` (what ``jaxinv/assets/dgp_schedules/*.json`` hold)."""
    st = self.stages
    return {"iterations": [s.iterations for s in st], "z_lrs": [s.z_lr for s in st],
            "G_lrs": [s.G_lr for s in st], "lr_ratio": [s.lr_ratio for s in st],
            "ft_num": [s.ft_num for s in st], "w_D_loss": [s.w_D_loss for s in st],
            "w_mse": [s.w_mse for s in st], "ftr_num": [s.ftr_num for s in st],
            "use_in": [s.use_in for s in st], "w_nll": self.w_nll, "dgp_mode": self.dgp_mode,
            "factor": self.factor, "update_embed": self.update_embed, "update_G": self.update_G,
            "select_num": self.select_num, "sample_std": self.sample_std,
            "G_B1": self.betas[0], "G_B2": self.betas[1]}


def load_schedule(name_or_path: str, **overrides) -> Schedule:
  """A schedule from ``jaxinv/assets/dgp_schedules/NAME.json`` or a JSON file in the list form."""
  path = name_or_path
  if not os.path.isfile(path):
    path = os.path.join(CONFIG_DIR, f"{name_or_path}.json")
  if not os.path.isfile(path):
    known = sorted(f[:-5] for f in os.listdir(CONFIG_DIR) if f.endswith(".json")) \
        if os.path.isdir(CONFIG_DIR) else []
    raise FileNotFoundError(f"no DGP schedule {name_or_path!r}; known: {', '.join(known)}")
  with open(path) as f:
    cfg = json.load(f)
  return Schedule.from_lists(cfg, **overrides)


# ----------------------------------------------------------------------------- degradations


@functools.lru_cache(maxsize=None)
def degradation(mode: str, factor: int = 4) -> Callable[[jax.Array], jax.Array]:
  """DGP's generator-path ``pre_process`` (differentiable) for ``mode``; identity otherwise.

  Cached: the same callable for the same settings, so jitted programs are reused.
  """
  if mode in DEGRADING_MODES:
    return functools.partial(tasks.dgp_degrade, mode=mode, factor=factor)
  return _identity


def _identity(x):
  return x


def target_of(origin: np.ndarray, mode: str, factor: int = 4) -> np.ndarray:
  """DGP's observed-image path ``pre_process(target=True)`` on ``[B, H, W, 3]`` (NumPy).

  SR uses DGP's float32-floor + PIL Lanczos path (:func:`jaxinv.tasks.dgp_sr_target`), the
  other degrading modes their exact generator-path ops; reconstruction modes return ``origin``.
  """
  origin = np.asarray(origin, np.float32)
  if mode in ("SR",):
    return np.stack([tasks.dgp_sr_target(o, factor)[1] for o in origin]).astype(np.float32)
  if mode in DEGRADING_MODES:
    return np.asarray(tasks.dgp_degrade(jnp.asarray(origin), mode, factor))
  return origin


# ----------------------------------------------------------------------------- loss


def feature_loss(fake_feats: Sequence[jax.Array], real_feats: Sequence[jax.Array],
                 ftr_num: int) -> jax.Array:
  """DGP's ``DiscriminatorLoss``: ``sum_{k=1..ftr_num} mean|h_fake[-k] - h_real[-k]|``."""
  return sum(jnp.mean(jnp.abs(f - jax.lax.stop_gradient(r)))
             for f, r in zip(fake_feats[::-1][:ftr_num], real_feats[::-1][:ftr_num]))


def _masked_feature_loss(fake_feats, real_feats, mask):
  """``sum_k mask[k] * mean|fake[k] - real[k]|`` (mask over ``h_list`` order; see :func:`ftr_mask`)."""
  return sum(m * jnp.mean(jnp.abs(f - jax.lax.stop_gradient(r)))
             for m, f, r in zip(mask, fake_feats, real_feats))


def ftr_mask(ftr_num: int, num_features: int) -> np.ndarray:
  """The 0/1 weights over D features that :func:`feature_loss` with ``ftr_num`` sums."""
  return (np.arange(num_features) >= num_features - ftr_num).astype(np.float32)


def _objective(variables, data, shared, *, G, D, use_in, degrade):
  """The DGP loss of ONE image (vmapped over images).

  variables: ``{"z": [dim_z], "G": G params}``; data: ``target [H, W, 3]``, ``target_feats``
  (D features of the target), ``y`` (int), ``weights`` ``[3]`` = (w_D, w_mse, w_nll),
  ``ftr_mask`` ``[num_features]`` (:func:`ftr_mask`) and ``in_params`` (or None);
  shared: ``{"D": D params}``.
  """
  z, gp = variables["z"], variables["G"]
  emb = jnp.asarray(gp["shared"]["weight"])[data["y"]][None]
  x = G.apply({"params": gp}, z[None], emb, use_in, data.get("in_params"))
  x_map = degrade(x)
  _, feats = D.apply({"params": shared["D"]}, x_map)
  target = data["target"][None]
  ftr = _masked_feature_loss(feats, [f[None] for f in data["target_feats"]], data["ftr_mask"])
  mse = jnp.mean(jnp.square(x_map - target))
  nll = jnp.mean(jnp.square(z)) / 2
  w = data["weights"]
  loss = w[0] * ftr + w[1] * mse + w[2] * nll
  return loss, {"ftr_loss": ftr, "mse_loss": mse, "nll": nll,
                "l1_loss": jnp.mean(jnp.abs(x_map - target)), "loss": loss}


# ----------------------------------------------------------------------------- optimizer


def _labels(g_params, update_embed):
  groups = biggan.trainable_mask(g_params, update_embed)
  return {"z": "z", "G": jax.tree_util.tree_map(lambda g: "frozen" if g < 0 else f"g{g}", groups)}


def make_optimizer(schedule: Schedule, g_params) -> optax.GradientTransformation:
  """DGP's two Adam optimisers (z and G) as one ``optax.multi_transform`` for one image.

  Labels: ``z``, ``g0..g{n}`` (G groups: 0 = ``linear`` [+ ``shared`` with
  ``update_embed``], i = GBlock i-1 with its attention) and ``frozen`` (buffers,
  ``output_layer``, ``shared`` otherwise: never updated, no state). Each trainable label is
  ``scale_by_adam(b1, b2, eps)`` then ``-lr[step]`` from its column of :func:`lr_table`, so
  every group updates its Adam moments every step, also while its lr is 0, as torch's Adam
  does (a later stage unlocking it finds every earlier gradient in its state). The step
  count lives in the optimiser state and runs across stages.

  Cached on (schedule, param structure): equal inputs give the same object, so
  :func:`jaxinv.inversion.optimize.optimize` reuses its compiled program.
  """
  labels = _labels(g_params, schedule.update_embed)
  leaves, treedef = jax.tree_util.tree_flatten(labels)
  return _optimizer(schedule, treedef, tuple(leaves), _num_groups(g_params))


@functools.lru_cache(maxsize=None)
def _optimizer(schedule, treedef, labels, num_groups):
  b1, b2 = schedule.betas
  table = lr_table(schedule, num_groups)

  def adam_lr(col):
    lr = jnp.asarray(table[:, col])
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=schedule.eps),
                       optax.scale_by_schedule(lambda c: -lr[jnp.minimum(c, lr.shape[0] - 1)]))
  transforms = {"z": adam_lr(0), "frozen": optax.set_to_zero()}
  transforms.update({f"g{i}": adam_lr(1 + i) for i in range(num_groups)})
  return optax.multi_transform(transforms, jax.tree_util.tree_unflatten(treedef, list(labels)))


def _num_groups(g_params) -> int:
  return 1 + max(jax.tree_util.tree_leaves(biggan.trainable_mask(g_params, True)))


def lr_table(schedule: Schedule, num_groups: int) -> np.ndarray:
  """``[total_steps, 1 + num_groups]``: column 0 the z lr, column 1 + i G group i's lr."""
  rows = []
  for st in schedule.stages:
    g = st.group_lrs(num_groups) if schedule.update_G else [0.0] * num_groups
    rows += [[st.z_lr] + g] * st.iterations
  return np.asarray(rows, np.float32).reshape(-1, 1 + num_groups)


# ----------------------------------------------------------------------------- select_z


def _d_feats(D, d_params, x):
  return D.apply({"params": d_params}, x)[1]


def select_z(G, g_params, D, d_params, target: np.ndarray, candidates_z: np.ndarray,
             candidates_y: np.ndarray, mode: str, factor: int = 4, ftr_num: int = 3,
             batch: int = 16) -> tuple[int, np.ndarray]:
  """DGP's candidate search for one image: ``(argmin, losses [N])``.

  Each candidate ``G(z_c, shared(y_c))`` (``use_in=False``) goes through the *target* path
  (:func:`target_of`) and is scored with the ftr_num-3 feature loss against ``target``
  ``[H, W, 3]``. Draw candidates with :func:`draw_candidates`.
  """
  tf = _feats_fn(D)(d_params, jnp.asarray(target)[None])
  losses = []
  n = len(candidates_z)
  batch = min(batch, n)
  pad = -n % batch  # a full last batch: one compiled program for every chunk
  cz = np.concatenate([candidates_z, candidates_z[:1].repeat(pad, 0)])
  cy = np.concatenate([candidates_y, candidates_y[:1].repeat(pad, 0)])
  for i in range(0, len(cz), batch):
    x = np.asarray(_gen_fn(G)(g_params, jnp.asarray(cz[i:i + batch]),
                              jnp.asarray(cy[i:i + batch], jnp.int32)))
    losses.append(np.asarray(_score_fn(D, ftr_num)(d_params, jnp.asarray(target_of(x, mode, factor)),
                                                   tf)))
  losses = np.concatenate(losses)[:n]
  return int(np.argmin(losses)), losses


@functools.lru_cache(maxsize=None)
def _gen_fn(G):
  return jax.jit(lambda p, z, y: biggan.generate(G, p, z, y))


@functools.lru_cache(maxsize=None)
def _feats_fn(D):
  return jax.jit(lambda p, x: _d_feats(D, p, x))


@functools.lru_cache(maxsize=None)
def _score_fn(D, ftr_num):
  def score(p, xd, tf):
    feats = _d_feats(D, p, xd)
    return jax.vmap(lambda f: feature_loss([g[None] for g in f], tf, ftr_num))(feats)
  return jax.jit(score)


def draw_candidates(key: jax.Array, num: int, dim_z: int, std: float, y: int | None,
                    n_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """``num`` draws ``z ~ N(0, std^2)``; ``y`` fixed, or uniform over classes when None/negative.

  DGP's edge cases: ``num = 0`` gives z = 0; ``num = 1`` one N(0, 1) draw.
  """
  kz, ky = jax.random.split(key)
  if num == 0:
    z = np.zeros((1, dim_z), np.float32)
  else:
    z = np.asarray(jax.random.normal(kz, (num, dim_z))) * (1.0 if num == 1 else std)
  n = max(num, 1)
  if y is None or y < 0:
    ys = np.asarray(jax.random.randint(ky, (n,), 0, n_classes))
  else:
    ys = np.full((n,), y)
  return z.astype(np.float32), ys.astype(np.int32)


# ----------------------------------------------------------------------------- run


@dataclasses.dataclass
class DGPResult:
  """What :func:`run` returns (leading axis B = images)."""
  z: np.ndarray                 # [B, dim_z] final latents
  g_params: Any                 # fine-tuned G params, leading [B] axis
  in_params: Any                # IN affine values in use at the end (or None)
  x: np.ndarray                 # [B, H, W, 3] final images G(z, y, use_in[-1])
  records: dict                 # per step [S, B, ...]: ftr_loss, mse_loss, nll, l1_loss, loss,
                                # z (before the step)


def _stack(tree, b):
  return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(jnp.asarray(a), (b,) + np.shape(a)),
                                tree)


@functools.lru_cache(maxsize=None)
def _loss_fn(G, D, use_in, degrade):
  # One object per setting, so optimize() reuses its compiled chunk across stages and runs.
  def loss_fn(variables, data, shared):
    loss, aux = _objective(variables, data, shared, G=G, D=D, use_in=use_in, degrade=degrade)
    return loss, dict(aux, z=variables["z"])
  return loss_fn


def run(G, g_params, D, d_params, target: np.ndarray, z0: np.ndarray, y: np.ndarray,
        schedule: Schedule, degrade: Callable | None = None, progress: bool | str = False,
        chunk: int | None = None, mesh=None, checkpoint=None) -> DGPResult:
  """DGP's progressive stages for B images at once (B generator copies in one program).

  Each stage is one :func:`jaxinv.inversion.optimize.optimize` call continuing the previous
  stage's state (variables and both Adam states); the stage's loss weights and feature mask
  are per-image data, its learning rates the optimiser's step-indexed tables, so stages of
  equal ``use_in`` share one compiled program (``chunk`` defaults to the gcd of the stage
  lengths, at most 100).

  Args:
    G, g_params: generator module and its params (the starting point of every copy).
    D, d_params: discriminator (frozen).
    target: ``[B, H, W, 3]`` degraded observations (:func:`target_of`).
    z0: ``[B, dim_z]`` initial latents (:func:`select_z`); y: ``[B]`` int classes.
    schedule: the stages (:func:`load_schedule`).
    degrade: generator-path degradation; default :func:`degradation` of the schedule's mode.
    progress: tqdm bar per stage (a string prefixes its description).
    chunk: steps per compiled scan call.
    mesh: shard the images — their z, generator copies and Adam states — over this mesh.
    checkpoint: a :class:`jaxinv.io.inflight.BatchCheckpoint`: the state (and the records so
      far) is saved after every chunk, and a saved state is continued from, at the same step of
      the same stage, so the result equals an uninterrupted run's.

  Returns:
    :class:`DGPResult`; ``records`` holds per-step ``ftr_loss, mse_loss, nll, l1_loss, loss``
    and ``z`` (before the step), ``[S, B, ...]``.
  """
  import sys
  from jaxinv.inversion import run as run_lib
  from jaxinv.inversion.optimize import init_state, optimize

  b = z0.shape[0]
  degrade = degrade or degradation(schedule.dgp_mode, schedule.factor)
  optimizer = make_optimizer(schedule, g_params)
  variables = {"z": jnp.asarray(z0, jnp.float32), "G": _stack(g_params, b)}
  state = init_state(variables, optimizer)
  target = jnp.asarray(target, jnp.float32)
  target_feats = _feats_fn(D)(d_params, target)
  nfeat = len(target_feats)
  y = jnp.asarray(y, jnp.int32)
  shared = {"D": d_params}
  if chunk is None:
    chunk = min(100, functools.reduce(math.gcd, [s.iterations for s in schedule.stages
                                                 if s.iterations] or [1]))
  init_in = _init_in_fn(G, mesh)
  in_like = (jax.eval_shape(init_in, state.variables["G"], state.variables["z"], y)
             if any(st.use_in for st in schedule.stages) else {})
  in_params, prev_use_in, records, resume_at = None, False, [], 0
  if checkpoint is not None:
    like = {"state": state, "in_params": jax.tree_util.tree_map(
        lambda a: np.zeros(a.shape, a.dtype), in_like), "has_in": np.zeros((), np.int32)}
    restored = checkpoint.restore(like)
    if restored is not None:
      tree, resume_at, before = restored
      state = jax.tree_util.tree_map(jnp.asarray, tree["state"])
      in_params = jax.tree_util.tree_map(jnp.asarray, tree["in_params"]) if int(tree["has_in"]) else None
      records.append(before)
      print(f"resuming {checkpoint.batch_id} ({b} images) at step {resume_at}/"
            f"{schedule.total_steps}", file=sys.stderr)
  total, offset = schedule.total_steps, 0
  for si, st in enumerate(schedule.stages):
    stage_start, offset = offset, offset + st.iterations
    if resume_at >= offset and resume_at > 0:
      prev_use_in = st.use_in        # finished before the checkpoint: its records are restored
      continue
    within = max(0, resume_at - stage_start)
    if within == 0 and st.use_in and (in_params is None or not prev_use_in):
      # DGP sets the IN affine values at the first use_in forward after a use_in=False one.
      in_params = init_in(state.variables["G"], state.variables["z"], y)
    prev_use_in = st.use_in
    if st.iterations == 0:
      continue
    data = {"target": target, "target_feats": target_feats, "y": y,
            "weights": _rows([st.w_D_loss, st.w_mse, schedule.w_nll], b),
            "ftr_mask": _rows(ftr_mask(st.ftr_num, nfeat), b)}
    if st.use_in:
      data["in_params"] = in_params
    on_chunk = None
    if checkpoint is not None:
      def on_chunk(stt, done, recs, _in=in_params):
        step = stage_start + done
        if step < total:
          so_far = _join_records(records + [recs])
          checkpoint.save({"state": stt, "in_params": _in if _in is not None else jax.tree_util.tree_map(
              lambda a: np.zeros(a.shape, a.dtype), in_like), "has_in": np.int32(_in is not None)},
              step, so_far)
          run_lib.pause_after_checkpoint()
    res = optimize(_loss_fn(G, D, st.use_in, degrade), None, data, optimizer,
                   st.iterations - within, shared=shared, chunk=chunk, state=state, mesh=mesh,
                   on_chunk=on_chunk,
                   progress=f"{progress} stage {si + 1}" if isinstance(progress, str)
                   else (f"DGP stage {si + 1}" if progress else False))
    state = res.state
    records.append(res.aux)
  last_in = schedule.stages[-1].use_in
  x = _render_fn(G, last_in, mesh)(state.variables["G"], state.variables["z"], y,
                             in_params if last_in else None)
  recs = _join_records(records)
  return DGPResult(np.asarray(state.variables["z"]), state.variables["G"], in_params,
                   np.asarray(x), recs)


def _join_records(records):
  records = [r for r in records if r]
  if not records:
    return {}
  return {k: np.concatenate([np.asarray(r[k]) for r in records]) for k in records[0]}


def _rows(v, b):
  return jnp.broadcast_to(jnp.asarray(v, jnp.float32), (b, len(v)))


@functools.lru_cache(maxsize=None)
def _init_in_fn(G, mesh=None):
  from jaxinv import sharding
  return sharding.map_images(lambda gp, z, y: biggan.init_in_params(
      G, gp, z[None], jnp.asarray(gp["shared"]["weight"])[y][None])[1], mesh)


@functools.lru_cache(maxsize=None)
def _render_fn(G, use_in, mesh=None):
  from jaxinv import sharding
  return sharding.map_images(lambda gp, z, y, ip: G.apply(
      {"params": gp}, z[None], jnp.asarray(gp["shared"]["weight"])[y][None], use_in, ip)[0], mesh)


# ----------------------------------------------------------------------------- metrics


def hole_begin_end(resolution: int) -> tuple[int, int]:
  """DGP's centre hole ``[b:e, b:e]``: ``hole = res // 3``, ``b = (res - hole) // 2``, ``e = res - b``."""
  b = (resolution - resolution // 3) // 2
  return b, resolution - b


def restore_l_channel(x01: np.ndarray, target01: np.ndarray) -> np.ndarray:
  """Colorization scoring: ``lab2rgb(L of rgb2lab(target), ab of rgb2lab(x))``, ``[H, W, 3]`` [0, 1]."""
  from skimage import color
  lab_t = color.rgb2lab(target01)
  lab_x = color.rgb2lab(x01)
  return color.lab2rgb(np.concatenate([lab_t[..., :1], lab_x[..., 1:]], axis=-1))


def metrics(x: np.ndarray, origin: np.ndarray, mode: str) -> dict:
  """DGP's ``get_metrics`` of one output ``x`` against the ground truth ``origin`` (``[H, W, 3]``, [-1, 1]).

  ``l1_loss_origin = mean|x - t| / 2`` and ``mse_loss_origin = mean((x - t)^2) / 4`` (the [0, 1]
  scale, full image); PSNR / SSIM on ``(x + 1)/2`` vs ``(t + 1)/2`` with the defaults DGP ran
  with (scikit-image <= 0.17): PSNR ``data_range = 1``, SSIM ``data_range = 2`` (the float
  dtype range), 7x7 box window, sample covariance, per-channel mean, float64. Colorization
  scores :func:`restore_l_channel` of the output; inpainting scores the hole crop only.
  """
  from jaxinv import metrics as M
  x = np.asarray(x, np.float32)
  t = np.asarray(origin, np.float32)
  out = {"l1_loss_origin": float(np.mean(np.abs(x - t))) / 2,
         "mse_loss_origin": float(np.mean(np.square(x - t))) / 4}
  x01 = (x + np.float32(1)) / np.float32(2)
  t01 = (t + np.float32(1)) / np.float32(2)
  if mode == "colorization":
    x01 = restore_l_channel(x01, t01)
  if mode == "inpainting":
    b, e = hole_begin_end(x.shape[0])
    x01, t01 = x01[b:e, b:e], t01[b:e, b:e]
  out["psnr"] = M.psnr(t01, x01, data_range=1.0)
  out["ssim"] = M.ssim_skimage(np.asarray(t01, np.float64), np.asarray(x01, np.float64),
                               data_range=2.0)
  return out


# ----------------------------------------------------------------------------- images, end to end


def load_image_uint8(path, resolution: int) -> np.ndarray:
  """DGP's ``get_img`` before normalisation: ``[res, res, 3]`` uint8.

  Centre crop to the short side (torchvision ``center_crop`` rounding), then torchvision
  ``Resize(res)`` = PIL bilinear.
  """
  from PIL import Image
  with Image.open(path) as im:
    im = im.convert("RGB")
    w, h = im.size
    s = min(w, h)
    top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
    im = im.crop((left, top, left + s, top + s)).resize((resolution, resolution), Image.BILINEAR)
    return np.asarray(im, np.uint8).copy()


def load_image(path, resolution: int) -> np.ndarray:
  """DGP's ``get_img``: ``[res, res, 3]`` float32 in [-1, 1] (``(u/255 - 0.5)/0.5``)."""
  u = load_image_uint8(path, resolution).astype(np.float32) / np.float32(255)
  return (u - np.float32(0.5)) / np.float32(0.5)


def invert(G, g_params, D, d_params, origins: np.ndarray, classes: Sequence[int],
           schedule: Schedule, keys: jax.Array, progress: bool | str = False, mesh=None,
           checkpoint=None) -> dict:
  """DGP end to end for B images: degrade the observations, select z (and y), run the stages.

  Args:
    origins: ``[B, H, W, 3]`` ground-truth/observed images in [-1, 1] (:func:`load_image`).
    classes: B ints; negative = unknown (searched by :func:`select_z` over random classes).
    keys: ``[B, 2]`` one key per image, for its candidates (:func:`jaxinv.inversion.run.image_keys`).

  Returns:
    ``{"z", "y", "x", "target", "z0", "select_losses", "records", "g_params", "in_params"}``.
  """
  b = len(origins)
  target = target_of(origins, schedule.dgp_mode, schedule.factor)
  z0, y0, sel = [], [], []
  for i in range(b):
    cz, cy = draw_candidates(keys[i], schedule.select_num, G.config.dim_z,
                             schedule.sample_std, int(classes[i]), G.config.n_classes)
    best, losses = select_z(G, g_params, D, d_params, target[i], cz, cy, schedule.dgp_mode,
                            schedule.factor)
    z0.append(cz[best])
    y0.append(cy[best])
    sel.append(losses)
  z0, y0 = np.stack(z0), np.asarray(y0, np.int32)
  res = run(G, g_params, D, d_params, target, z0, y0, schedule, progress=progress, mesh=mesh,
            checkpoint=checkpoint)
  return {"z": res.z, "y": y0, "x": res.x, "target": target, "z0": z0,
          "select_losses": np.stack(sel), "records": res.records, "g_params": res.g_params,
          "in_params": res.in_params}


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
  """DGP as a driver method (:func:`jaxinv.inversion.run.run`): B images fine-tune B generator
  copies in one program, sharded with the images over ``ctx.mesh``; resumable mid-stage.

  Per-image data: ``origin [H, W, 3]`` (the input in [-1, 1], :func:`load_image`), ``class``
  (int; negative = unknown, searched) and, for jitter, ``jitter_key`` (the key of its samples).
  Outputs: ``z, y, z0, select_losses, metric_*`` per image, the per-step records, the result
  and ``target`` images, and the mode's manipulation: ``jitter`` / ``transfer`` grids per
  image, or (morphing, exactly 2 images in one batch) the ``morph`` strip of image 0.
  """
  G: Any
  g_params: Any
  D: Any
  d_params: Any
  schedule: Schedule
  jitter_samples: int = 30
  jitter_stds: tuple = (0.3, 0.5, 0.7)
  transfer_classes: tuple = ()
  name = "dgp"

  def settings(self) -> dict:
    return {"schedule": self.schedule.to_lists(), "jitter_samples": self.jitter_samples,
            "jitter_stds": list(self.jitter_stds), "transfer_classes": list(self.transfer_classes)}

  def run_batch(self, data, keys, ctx):
    from jaxinv.inversion import run as run_lib
    from jaxinv.io.images import make_grid
    mode = self.schedule.dgp_mode
    origins = np.asarray(data["origin"], np.float32)
    r = invert(self.G, self.g_params, self.D, self.d_params, origins, np.asarray(data["class"]),
               self.schedule, keys, progress=ctx.progress, mesh=ctx.mesh, checkpoint=ctx.checkpoint)
    mets = [metrics(x, o, mode) for x, o in zip(r["x"], origins)]
    arrays = {"z": r["z"], "y": r["y"], "z0": r["z0"], "select_losses": r["select_losses"],
              **{f"metric_{k}": np.asarray([m[k] for m in mets]) for k in mets[0]}}
    b = len(origins)
    stepwise = {k: v for k, v in r["records"].items() if k != "z"}
    if "loss" not in stepwise:
      stepwise["loss"] = np.zeros((0, b), np.float32)
    images = {"": r["x"], "target": r["target"]}
    copy = lambda i: jax.tree_util.tree_map(lambda a: a[i], r["g_params"])
    if mode == "jitter":
      grids = []
      for i in range(b):
        noise = np.asarray(jax.random.normal(jnp.asarray(data["jitter_key"][i]),
                                             (self.jitter_samples, self.G.config.dim_z)))
        xs = jitter(self.G, copy(i), r["z"][i:i + 1], r["y"][i:i + 1], noise, self.jitter_stds)
        n = len(noise)
        grids.append(make_grid([list(xs[k * n:(k + 1) * n]) for k in range(len(self.jitter_stds))]))
      images["jitter"] = np.stack(grids)
    elif mode == "category_transfer":
      images["transfer"] = np.stack([
          make_grid([list(category_transfer(self.G, copy(i), r["z"][i:i + 1], self.transfer_classes))])
          for i in range(b)])
    elif mode == "morphing":
      if ctx.real != 2:
        raise ValueError(f"morphing interpolates between exactly 2 images in one batch; got {ctx.real}")
      alphas = [i / 10 for i in range(11)]
      xs = morph(self.G, copy(0), copy(1), r["z"][0:1], r["z"][1:2], r["y"][0:1], r["y"][1:2],
                 alphas)
      strip = make_grid([list(xs[::-1])])
      images["morph"] = np.stack([strip] * b)
    return run_lib.BatchOutput(arrays, stepwise, images)


# ----------------------------------------------------------------------------- manipulations


def interpolate_params(a, b, alpha: float):
  """``alpha * a + (1 - alpha) * b`` over every leaf (DGP's morphing: weights, u0, BN stats)."""
  return jax.tree_util.tree_map(lambda p, q: alpha * jnp.asarray(p) + (1 - alpha) * jnp.asarray(q),
                                a, b)


def morph(G, params_a, params_b, z1, z2, y1, y2, alphas: Sequence[float]) -> np.ndarray:
  """DGP's ``example.py`` morphing between two reconstructions ``[len(alphas), H, W, 3]``.

  For each alpha: G with interpolated params, ``z = a z1 + (1-a) z2`` and
  ``emb = a * shared_a(y1) + (1-a) * shared_b(y2)``. z: ``[1, dim_z]``, y: ``[1]``.
  """
  ea = biggan_embed(G, params_a, y1)
  eb = biggan_embed(G, params_b, y2)

  @jax.jit
  def one(alpha):
    p = interpolate_params(params_a, params_b, alpha)
    return G.apply({"params": p}, alpha * z1 + (1 - alpha) * z2, alpha * ea + (1 - alpha) * eb)
  return np.concatenate([np.asarray(one(jnp.float32(a))) for a in alphas])


def biggan_embed(G, params, y):
  return G.apply({"params": params}, jnp.asarray(y), method="embed")


def jitter(G, params, z, y, noise, stds: Sequence[float]) -> np.ndarray:
  """DGP's random jittering: ``G(z + std * noise, shared(y))`` for each std, ``[S*N, H, W, 3]``.

  z ``[1, dim_z]``; noise ``[N, dim_z]`` (DGP: 30 N(0, I) draws per std).
  """
  n = noise.shape[0]
  y = jnp.broadcast_to(jnp.asarray(y, jnp.int32), (n,))
  return np.concatenate([np.asarray(_gen_fn(G)(params, jnp.asarray(z) + s * jnp.asarray(noise), y))
                         for s in stds])


def category_transfer(G, params, z, classes) -> np.ndarray:
  """DGP's category transfer: ``G(z, shared(c))`` for every class c, ``[C, H, W, 3]``."""
  c = jnp.asarray(classes, jnp.int32)
  return np.asarray(_gen_fn(G)(params, jnp.broadcast_to(jnp.asarray(z), (c.shape[0], z.shape[-1])),
                               c))


# ----------------------------------------------------------------------------- memory


def state_bytes_per_image(cfg: biggan.BigGANConfig, update_embed: bool = False) -> dict:
  """Per-image optimisation state from the shapes: params copy, Adam mu/nu, gradient (float32).

  Activations are not included (see the closing note of issue 6 for measured totals).
  """
  G = biggan.BigGANGenerator(cfg)
  shapes = jax.eval_shape(G.init, jax.random.key(0), jnp.zeros((1, cfg.dim_z)),
                          jnp.zeros((1, cfg.shared_dim)))["params"]
  groups = biggan.trainable_mask(shapes, update_embed)
  sizes = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda s: int(np.prod(s.shape)), shapes))
  gids = jax.tree_util.tree_leaves(groups)
  total = sum(sizes)
  trainable = sum(s for s, g in zip(sizes, gids) if g >= 0)
  return {"params": 4 * total, "trainable": 4 * trainable,
          "adam": 2 * 4 * trainable, "grad": 4 * trainable,
          "total": 4 * total + 3 * 4 * trainable}
