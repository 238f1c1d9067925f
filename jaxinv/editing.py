"""Latent-code editing: interpolation, style mixing, (layer-wise) manipulation, directions.

The three editing functions compute what IDInvert's ``utils/editor.py`` computes, in
NumPy (float64 inside, the caller's dtype out is not forced):

* :func:`interpolate` — ``a + t·(b − a)`` for ``t = linspace(0, 1, step)``;
* :func:`mix_style` — w+ codes whose layers in ``mix_layers`` come from a style code
  and the others from a content code;
* :func:`manipulate` — ``code + d·strength_l·boundary`` for ``d = linspace(start, end,
  step)`` on the chosen layers only.

Boundaries: IDInvert/InterFaceGAN release them as ``np.save`` of a dict (a pickled 0-d
object ``.npy``). :func:`load_boundary` reads those without general unpickling (only
NumPy's array reconstruction, dtypes and ``_codecs.encode`` are admitted) and checks the
structure; :func:`save_boundary` writes the plain form (``.npz`` of arrays) that
:func:`load_boundary` also reads and that ``jaxinv directions`` writes.

Directions without trained boundaries: :func:`sefa_directions` (closed-form
factorisation of the style/first-layer weights, Shen & Zhou 2021) and
:func:`pca_directions` (principal axes of sampled w, as GANSpace does).

References:
  Zhu et al., In-Domain GAN Inversion for Real Image Editing, https://arxiv.org/abs/2004.00049
  Shen & Zhou, Closed-Form Factorization of Latent Semantics in GANs, https://arxiv.org/abs/2007.06600
  Härkönen et al., GANSpace, https://arxiv.org/abs/2004.02546
"""

from __future__ import annotations

import os
import pickle
from typing import Iterable, Sequence

import numpy as np

from jaxinv.io.errors import InputFileError

__all__ = ["interpolate", "mix_style", "manipulate", "boundary_frames", "parse_indices",
           "layerwise_manipulation_strength", "BoundaryError", "Boundary", "load_boundary",
           "save_boundary", "crop_boundary", "sefa_directions", "pca_directions"]


def parse_indices(spec, min_val: int = 0, max_val: int | None = None) -> list[int]:
  """``"0-3,5"`` / ``[0, 1]`` / ``3`` / ``None`` → sorted unique indices (``"a-b"`` inclusive).

  ``None`` or ``""`` gives ``[]`` (callers read that as "all layers").
  """
  if spec is None or (isinstance(spec, str) and not spec.strip()):
    return []
  if isinstance(spec, (int, np.integer)):
    out = [int(spec)]
  elif isinstance(spec, str):
    out = []
    for part in spec.replace(" ", "").split(","):
      if not part:
        continue
      if "-" in part:
        a, b = part.split("-", 1)
        out.extend(range(int(a), int(b) + 1))
      else:
        out.append(int(part))
  else:
    out = [int(i) for i in spec]
  out = sorted(set(out))
  bad = [i for i in out if i < min_val or (max_val is not None and i > max_val)]
  if bad:
    raise ValueError(f"indices {bad} outside [{min_val}, {max_val}]")
  return out


def interpolate(src: np.ndarray, dst: np.ndarray, step: int = 5) -> np.ndarray:
  """Linear interpolation ``[N, ...]`` × ``[N, ...]`` → ``[N, step, ...]`` (ends included)."""
  src = np.asarray(src)
  dst = np.asarray(dst)
  if src.shape != dst.shape or src.ndim < 2:
    raise ValueError(f"interpolate needs equal [N, ...] codes, got {src.shape} and {dst.shape}")
  t = np.linspace(0.0, 1.0, step).reshape([1, step] + [1] * (src.ndim - 1))
  return src[:, None] + t * (dst - src)[:, None]


def mix_style(styles: np.ndarray, contents: np.ndarray, num_layers: int | None = None,
              mix_layers=None) -> np.ndarray:
  """Style mixing of w+ codes: ``[S, L, D]`` × ``[C, L, D]`` → ``[S, C, L, D]``.

  Layers in ``mix_layers`` (indices or ``"a-b"``; default all) are taken from the style
  code, the others from the content code.
  """
  styles = np.asarray(styles)
  contents = np.asarray(contents)
  if styles.ndim != 3 or contents.ndim != 3 or styles.shape[1:] != contents.shape[1:]:
    raise ValueError(f"mix_style needs [S, L, D] and [C, L, D], got {styles.shape}, "
                     f"{contents.shape}")
  L = styles.shape[1] if num_layers is None else num_layers
  if L != styles.shape[1]:
    raise ValueError(f"codes have {styles.shape[1]} layers, num_layers is {L}")
  layers = parse_indices(mix_layers, 0, L - 1) or list(range(L))
  take = np.zeros(L, bool)
  take[layers] = True
  s = styles[:, None]
  c = contents[None, :]
  return np.where(take[None, None, :, None], s, c)


def layerwise_manipulation_strength(num_layers: int, truncation_psi: float,
                                    truncation_layers: int) -> list[float]:
  """Per-layer strength: ``truncation_psi`` on the truncated layers, 1 elsewhere."""
  return [float(truncation_psi) if i < truncation_layers else 1.0 for i in range(num_layers)]


def manipulate(codes: np.ndarray, boundary: np.ndarray, start: float = -5.0, end: float = 5.0,
               step: int = 21, layerwise: bool = False, num_layers: int = 1,
               manipulate_layers=None, is_code_layerwise: bool = False,
               is_boundary_layerwise: bool = False, strength=1.0) -> np.ndarray:
  """Moves codes along a boundary: ``[N, (L,) ...]`` → ``[N, step, (L,) ...]``.

  Args:
    codes: ``[N, L, D]`` when ``is_code_layerwise`` else ``[N, D]`` (then repeated over L).
    boundary: ``[1, L, D]`` when ``is_boundary_layerwise`` else ``[1, D]``.
    start, end, step: the distances ``linspace(start, end, step)``.
    layerwise: manipulate per layer (output keeps the L axis); otherwise L = 1 and the
      output is ``[N, step, D]``.
    num_layers: L.
    manipulate_layers: indices or ``"a-b"`` of the layers to move (default all).
    strength: a number or L numbers multiplying the boundary per layer.
  """
  codes = np.asarray(codes)
  boundary = np.asarray(boundary)
  if boundary.ndim < 2 or boundary.shape[0] != 1:
    raise ValueError(f"boundary must be [1, ...], got {boundary.shape}")
  if not layerwise:
    if is_code_layerwise or is_boundary_layerwise:
      raise ValueError("layer-wise codes or boundaries need layerwise=True")
    num_layers, manipulate_layers, strength = 1, None, 1.0
  layers = parse_indices(manipulate_layers, 0, num_layers - 1) or list(range(num_layers))
  if is_code_layerwise:
    x = codes
    if x.shape[1] != num_layers:
      raise ValueError(f"codes have {x.shape[1]} layers, num_layers is {num_layers}")
  else:
    x = np.repeat(codes[:, None], num_layers, axis=1)
  if is_boundary_layerwise:
    b = boundary[0]
    if b.shape[0] != num_layers:
      raise ValueError(f"boundary has {b.shape[0]} layers, num_layers is {num_layers}")
  else:
    b = np.repeat(boundary, num_layers, axis=0)
  s = np.asarray([float(strength)] * num_layers if np.isscalar(strength) else strength,
                 np.float64)
  if s.size != num_layers:
    raise ValueError(f"{s.size} strengths for {num_layers} layers")
  b = b * s.reshape([num_layers] + [1] * (b.ndim - 1))
  if x.shape[1:] != b.shape:
    raise ValueError(f"codes {x.shape[1:]} and boundary {b.shape} do not match")
  d = np.linspace(start, end, step).reshape([1, step] + [1] * (x.ndim - 1))
  x = x[:, None]
  moved = x + d * b[None, None]
  mask = np.zeros((num_layers,) + (1,) * (b.ndim - 1), bool)
  mask[layers] = True
  out = np.where(mask[None, None], moved, np.repeat(x, step, axis=1))
  return out if layerwise else out[:, :, 0]


# --- boundary files ---------------------------------------------------------------------------

class BoundaryError(InputFileError):
  """A boundary file with an unexpected structure (or unsafe content)."""


class Boundary(dict):
  """``{"boundary": float array [1, ...], "manipulate_layers": list[int] | None}``."""


_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _RestrictedUnpickler(pickle.Unpickler):
  def find_class(self, module, name):
    if (module, name) not in _SAFE_GLOBALS:
      raise BoundaryError(f"refusing to unpickle {module}.{name} (only NumPy arrays are allowed)")
    if module == "_codecs":
      import codecs
      return codecs.encode
    if name in ("_reconstruct", "scalar"):
      try:
        from numpy._core import multiarray
      except ImportError:        # NumPy < 2
        from numpy.core import multiarray
      return getattr(multiarray, name)
    return getattr(np, name)

  def persistent_load(self, pid):
    raise BoundaryError("persistent ids are not allowed in a boundary file")


def _unpickle_0d(f):
  arr = _RestrictedUnpickler(f).load()
  if isinstance(arr, np.ndarray) and arr.dtype.hasobject and arr.shape == ():
    return arr[()]
  return arr


def _check(obj, path) -> Boundary:
  if isinstance(obj, np.ndarray):
    obj = {"boundary": obj}
  if not isinstance(obj, dict) or "boundary" not in obj:
    raise BoundaryError(f"{path}: expected a dict with 'boundary', got {type(obj).__name__}"
                        + (f" with keys {sorted(obj)}" if isinstance(obj, dict) else ""))
  extra = set(obj) - {"boundary", "meta_data", "manipulate_layers", "value"}
  if extra:
    raise BoundaryError(f"{path}: unexpected keys {sorted(extra)}")
  b = obj["boundary"]
  if not isinstance(b, np.ndarray) or b.dtype.kind != "f" or b.ndim < 2 or b.shape[0] != 1:
    raise BoundaryError(f"{path}: 'boundary' must be a float array [1, ...], got "
                        f"{getattr(b, 'shape', type(b).__name__)}")
  if not np.isfinite(b).all():
    raise BoundaryError(f"{path}: 'boundary' has non-finite values")
  layers = obj.get("manipulate_layers")
  meta = obj.get("meta_data")
  if meta is not None:
    if not isinstance(meta, dict) or set(meta) - {"manipulate_layers"}:
      raise BoundaryError(f"{path}: 'meta_data' must be {{'manipulate_layers': [...]}}")
    layers = meta.get("manipulate_layers", layers)
  if layers is not None:
    layers = np.asarray(layers).reshape(-1)
    if layers.size and layers.dtype.kind not in "iu":
      raise BoundaryError(f"{path}: manipulate_layers must be integers")
    n = b.shape[1] if b.ndim == 3 else None
    layers = [int(i) for i in layers]
    if any(i < 0 or (n is not None and i >= n) for i in layers):
      raise BoundaryError(f"{path}: manipulate_layers {layers} outside the boundary's {n} layers")
  return Boundary(boundary=b.astype(np.float32), manipulate_layers=layers)


def load_boundary(path: str | os.PathLike) -> Boundary:
  """Reads an IDInvert/InterFaceGAN boundary (pickled-dict ``.npy``, plain ``.npy`` or ``.npz``).

  Returns:
    ``Boundary(boundary=[1, L, D] or [1, D] float32, manipulate_layers=list or None)``.
  """
  import zipfile
  import zlib
  from jaxinv.io.errors import one_line
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise BoundaryError(f"{path}: no such file")
  try:
    return _load_boundary(path)
  except BoundaryError:
    raise
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error,
          NotImplementedError, MemoryError) as e:
    raise BoundaryError(f"{path}: not a readable boundary file, it is truncated or corrupt "
                        f"({one_line(e, 160)})") from None


def _load_boundary(path: str) -> Boundary:
  with open(path, "rb") as f:
    head = f.read(6)
  if head[:2] == b"PK":
    with np.load(path, allow_pickle=False) as z:
      obj = {k: z[k] for k in z.files}
    if "manipulate_layers" in obj and obj["manipulate_layers"].size == 0 \
        and obj.get("all_layers") is not None:
      obj["manipulate_layers"] = None
    obj.pop("all_layers", None)
    return _check(obj, path)
  if head != b"\x93NUMPY":
    raise BoundaryError(f"{path}: not a .npy/.npz file")
  with open(path, "rb") as f:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
      shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
      shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    if dtype.hasobject:
      if shape != ():
        raise BoundaryError(f"{path}: object array of shape {shape}, expected a pickled dict")
      try:
        obj = _unpickle_0d(f)
      except BoundaryError:
        raise
      except Exception as e:      # a truncated or corrupt pickle
        raise BoundaryError(f"{path}: unreadable boundary ({e})") from None
    else:
      obj = None
  if obj is None:
    obj = np.load(path, allow_pickle=False)
  return _check(obj, path)


def save_boundary(path: str | os.PathLike, boundary: np.ndarray,
                  manipulate_layers: Sequence[int] | None = None, **extra_arrays):
  """Writes the plain form: ``.npz`` with ``boundary`` and ``manipulate_layers`` (atomic)."""
  import io
  from jaxinv.io.checkpoints import atomic_write_bytes
  path = os.fspath(path)
  arrays = {"boundary": np.asarray(boundary, np.float32)}
  if manipulate_layers is None:
    arrays["manipulate_layers"] = np.zeros((0,), np.int64)
    arrays["all_layers"] = np.ones((), bool)
  else:
    arrays["manipulate_layers"] = np.asarray(list(manipulate_layers), np.int64)
  arrays.update({k: np.asarray(v) for k, v in extra_arrays.items()})
  buf = io.BytesIO()
  np.savez(buf, **arrays)
  atomic_write_bytes(path, buf.getvalue())


def crop_boundary(boundary: np.ndarray, num_layers: int, w_dim: int) -> np.ndarray:
  """``b[:, :L, :D]`` divided by one norm over the whole crop (a unit [1, L, D] direction)."""
  b = np.asarray(boundary)
  if b.ndim != 3 or b.shape[1] < num_layers or b.shape[2] < w_dim:
    raise BoundaryError(f"boundary {b.shape} cannot be cropped to [1, {num_layers}, {w_dim}]")
  c = b[:, :num_layers, :w_dim].astype(np.float64)
  return (c / np.linalg.norm(c)).astype(np.float32)


# --- directions --------------------------------------------------------------------------------

def sefa_directions(weights: Iterable[np.ndarray], num: int | None = None):
  """SeFa: the top eigenvectors of ``A Aᵀ`` for the stacked projection weights.

  Args:
    weights: arrays ``[D, out_k]`` (the latent-side input axis first, i.e. Flax's
      ``[in, out]``) of the layers the latent feeds (style affines of the chosen
      layers, or a first dense layer). Each output column is scaled to unit norm first.
    num: how many directions (default all, ``D``).

  Returns:
    ``(directions [num, D] unit rows, eigenvalues [num])``, eigenvalues descending.
  """
  ws = [np.asarray(w, np.float64) for w in weights]
  if not ws:
    raise ValueError("sefa_directions needs at least one weight")
  a = np.concatenate(ws, axis=1)
  a = a / np.maximum(np.linalg.norm(a, axis=0, keepdims=True), 1e-12)
  vals, vecs = np.linalg.eigh(a @ a.T)
  order = np.argsort(vals)[::-1][:num]
  dirs = vecs[:, order].T
  return dirs.astype(np.float32), vals[order].astype(np.float32)


def pca_directions(samples: np.ndarray, num: int | None = None):
  """PCA of sampled latents ``[N, D]`` (GANSpace): unit principal axes, descending variance.

  Returns:
    ``(directions [num, D], variances [num], mean [D])``.
  """
  x = np.asarray(samples, np.float64)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(f"pca_directions needs [N >= 2, D] samples, got {x.shape}")
  mean = x.mean(0)
  _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
  var = s ** 2 / (x.shape[0] - 1)
  vt, var = vt[:num], var[:num]
  # A fixed sign (largest coordinate positive) so reruns give the same files.
  sign = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(1)])
  return (vt * sign[:, None]).astype(np.float32), var.astype(np.float32), mean.astype(np.float32)


# --- directions for a loaded generator ---------------------------------------------------------

def _flat_params(params):
  from jaxinv.converters.table import flatten_paths
  return flatten_paths(params)


def generator_directions(model, method: str = "sefa", num: int = 5, samples: int = 10000,
                         seed: int = 0, layers=None):
  """Unit editing directions for a loaded generator (:class:`jaxinv.models.registry.Model`).

  Args:
    model: a ``stylegan`` / ``stylegan2`` (directions in w) or ``pggan`` (in z) model.
    method: ``"sefa"`` (closed form: style affines of ``layers``, default all; PGGAN: the
      first layer) or ``"pca"`` (principal axes of ``samples`` mapped w, style models only).
    num: how many directions.
    layers: SeFa layer indices (or ``"a-b"``) of the style affines used.

  Returns:
    ``(directions [num, D] or [num, L, D] (repeat_w=False), values [num], space)`` where
    ``space`` is ``"w"`` or ``"z"`` and ``values`` are eigenvalues / variances.
  """
  import jax
  flat = _flat_params(model.params)
  fam = model.family
  if method == "sefa":
    if fam in ("stylegan", "stylegan2"):
      keys = sorted((k for k in flat if k.endswith("/style_weight") and "/layer" in k),
                    key=lambda k: int(k.split("/layer")[1].split("/")[0]))
      idx = parse_indices(layers, 0, len(keys) - 1) or list(range(len(keys)))
      dirs, vals = sefa_directions([np.asarray(flat[keys[i]]) for i in idx], num)
      return dirs, vals, "w"
    if fam == "pggan":
      w = np.asarray(flat["layer0/weight"])          # [4, 4, z_dim, C] HWIO
      a = np.transpose(w, (2, 0, 1, 3)).reshape(w.shape[2], -1)
      dirs, vals = sefa_directions([a], num)
      return dirs, vals, "z"
    raise ValueError(f"SeFa directions are not defined here for family {fam!r}")
  if method == "pca":
    if fam not in ("stylegan", "stylegan2"):
      raise ValueError("PCA directions need a style-based generator (w space); "
                       f"{fam!r} samples z from an isotropic normal, which PCA cannot factor")
    cfg = model.config
    z = jax.random.normal(jax.random.key(seed), (samples, cfg.z_dim))
    mapping = jax.jit(lambda p, z: model.module.apply({"params": p}, z, method="mapping"))
    w = np.concatenate([np.asarray(mapping(model.params, z[i:i + 1000]))
                        for i in range(0, samples, 1000)])
    shape = w.shape[1:]
    dirs, var, _ = pca_directions(w.reshape(samples, -1), num)
    return dirs.reshape((-1,) + shape), var, "w"
  raise ValueError(f"unknown direction method {method!r} (sefa or pca)")


def direction_strip(model, direction: np.ndarray, distances: Sequence[float], seed: int = 0,
                    truncation_psi: float | None = None) -> np.ndarray:
  """Images ``[K, R, R, 3]`` of one sample moved by ``distances`` along ``direction``."""
  import jax
  import jax.numpy as jnp
  cfg = model.config
  p = {"params": model.params}
  z = jax.random.normal(jax.random.key(seed), (1, cfg.z_dim))
  d = jnp.asarray(np.asarray(distances, np.float32))
  if model.family == "pggan":
    codes = z + d[:, None] * jnp.asarray(direction)[None]
    return np.asarray(model.module.apply(p, codes))
  ex = model.extras or {}
  psi = ex.get("truncation_psi", 1.0) if truncation_psi is None else truncation_psi
  w = model.module.apply(p, z, method="mapping")
  wp = model.module.apply(p, w, psi, ex.get("truncation_layers", 0), method="truncate")
  dirn = jnp.asarray(direction)
  if dirn.ndim == 1:
    dirn = jnp.broadcast_to(dirn, wp.shape[1:])
  codes = wp + d[:, None, None] * dirn[None]
  return np.asarray(model.module.apply(p, None, codes, method="synthesis"))


def boundary_frames(z, boundary, max_step: float, frames: int):
  """Codes moved along a semantic boundary as mGANprior's face-editing script does.

  ``z_t = z + (l_t − 1)·max_step·n`` for ``l_t = linspace(0, 2, frames)``: every code is moved by
  the same offset, from ``−max_step`` to ``+max_step`` along ``n``.

  Args:
    z: ``[..., N, D]`` latent codes (any leading axes).
    boundary: ``[D]`` or ``[1, D]`` (InterFaceGAN unit normal).
    max_step: the largest distance along ``n``.
    frames: number of steps F (≥ 2).
  Returns:
    ``[F, ..., N, D]``.
  """
  import jax.numpy as jnp
  n = jnp.reshape(jnp.asarray(boundary, z.dtype), (-1,))
  if n.shape[0] != z.shape[-1]:
    raise ValueError(f"boundary has {n.shape[0]} dimensions; the codes have {z.shape[-1]}")
  if frames < 2:
    raise ValueError(f"frames must be >= 2, got {frames}")
  lt = jnp.linspace(0.0, 2.0, frames, dtype=z.dtype)
  offsets = (lt - 1.0) * max_step
  return z[None] + offsets.reshape((frames,) + (1,) * z.ndim) * n
