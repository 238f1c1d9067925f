"""Read NVIDIA network pickles (StyleGAN2-ADA / StyleGAN3, and the legacy TF ones) without running them.

NVIDIA's loader ``exec``s the Python source stored in the file (``module_src``)
to rebuild each network. This reader never does: it is a restricted unpickler
that accepts exactly the globals the two formats use and turns every object
into plain data:

* a persistent module (``torch_utils.persistence._reconstruct_persistent_obj``)
  becomes a :class:`PersistentObject` record: class name, init kwargs, the
  module's ``state`` dict; ``module_src`` is kept as inert text only;
* a tensor is rebuilt from its embedded legacy ``torch.save`` stream
  (``torch.storage._load_from_bytes``) by :mod:`jaxinv.io.torch_pickle`;
* a legacy TF ``dnnlib.tflib.network.Network`` becomes a :class:`TFNetwork`
  record (its ``build_module_src`` is never run either);
* numpy arrays and scalars, ``dnnlib.util.EasyDict`` and ``OrderedDict`` become
  their plain values (both ``numpy.core`` and ``numpy._core`` names).

Any other global raises :class:`UnsafePickleError` before anything runs.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

import numpy as np

from jaxinv.io import torch_pickle
from jaxinv.io.torch_pickle import CheckpointError, UnsafeCheckpointError

__all__ = ["PersistentObject", "TFNetwork", "UnsafePickleError", "load", "is_network_pickle",
           "state_dict", "plain", "tf_to_torch_generator_state", "tf_generator_kwargs",
           "tf_to_torch_discriminator_state", "tf_discriminator_kwargs"]


class UnsafePickleError(UnsafeCheckpointError):
  """The pickle references a global outside the NVIDIA-format allow-list; nothing ran."""


class PersistentObject:
  """Plain record of one NVIDIA persistent module (what ``_reconstruct_persistent_obj`` gets)."""

  def __init__(self, class_name: str, version: int, module_src: str, state: dict):
    self.class_name = class_name
    self.version = version
    self.module_src = module_src        # text only, never executed
    self.state = state

  @property
  def init_kwargs(self) -> dict:
    return plain(self.state.get("_init_kwargs", {}))

  @property
  def children(self) -> dict:
    return self.state.get("_modules") or {}

  def __repr__(self):
    return f"PersistentObject({self.class_name!r})"


class TFNetwork:
  """Plain record of a legacy ``dnnlib.tflib.network.Network`` (its pickled state)."""

  def __init__(self, *unused_args, **unused_kwargs):
    self.state: dict = {}

  def __setstate__(self, state):
    if not isinstance(state, dict):
      raise CheckpointError("TF network state is not a dict")
    self.state = state

  @property
  def name(self):
    return self.state.get("name")

  @property
  def static_kwargs(self) -> dict:
    return plain(self.state.get("static_kwargs", {}))

  @property
  def components(self) -> dict:
    return self.state.get("components") or {}

  @property
  def variables(self) -> dict[str, np.ndarray]:
    return {name: np.asarray(value, np.float32) for name, value in self.state.get("variables", [])}

  def __repr__(self):
    return f"TFNetwork({self.name!r})"


class _EasyDict(dict):
  """Stand-in for ``dnnlib.util.EasyDict`` (a dict subclass)."""


def _reconstruct_persistent_obj(meta):
  if not isinstance(meta, dict) or meta.get("type") != "class":
    raise CheckpointError("persistent object metadata of an unknown kind "
                          f"({meta.get('type') if isinstance(meta, dict) else type(meta).__name__})")
  state = meta.get("state")
  if not isinstance(state, dict):
    raise CheckpointError(f"persistent object {meta.get('class_name')!r} without a state dict")
  return PersistentObject(str(meta.get("class_name")), meta.get("version"),
                          str(meta.get("module_src", "")), state)


def _load_from_bytes(data):
  if not isinstance(data, (bytes, bytearray)):
    raise CheckpointError("embedded tensor storage is not a byte string")
  return torch_pickle.load_storage_stream(bytes(data))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
  if not isinstance(storage, np.ndarray):
    raise CheckpointError("tensor without an embedded storage")
  return torch_pickle._rebuild_tensor(storage, storage_offset, size, stride)


def _checked_dtype(dtype):
  dtype = np.dtype(dtype)
  if dtype.hasobject:
    raise UnsafePickleError("numpy object arrays are not read")
  return dtype


def _numpy_dtype(obj, align=False, copy=False):
  return _checked_dtype(np.dtype(obj, align, copy))


def _numpy_reconstruct(cls, shape, typecode):
  if cls is not np.ndarray:
    raise UnsafePickleError(f"numpy array of class {cls!r} is not read")
  return np.ndarray.__new__(np.ndarray, shape, typecode)


def _numpy_scalar(dtype, data=None):
  dtype = _checked_dtype(dtype)
  if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
    raise CheckpointError("malformed numpy scalar in the pickle")
  return np.frombuffer(bytes(data), dtype)[0]


_NUMPY = {"_reconstruct": _numpy_reconstruct, "scalar": _numpy_scalar}

_ALLOWED = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_parameter"): torch_pickle._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch_pickle._rebuild_parameter_with_state,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("collections", "OrderedDict"): torch_pickle._ordered_dict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib.tflib.network", "Network"): TFNetwork,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numpy_dtype,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    **{(m, n): f for m in ("numpy.core.multiarray", "numpy._core.multiarray")
       for n, f in _NUMPY.items()},
}


class _Unpickler(pickle.Unpickler):
  """The checkpoint reader's guards on NVIDIA's globals: the stream is walked opcode by opcode
  first, and allow-listed functions come back sealed (BUILD cannot set state on them)."""

  def __init__(self, file):
    torch_pickle._check_opcodes(file)
    super().__init__(file)

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      found = _ALLOWED[(module, name)]
      return found if isinstance(found, type) else torch_pickle._AllowedCallable(found)
    raise UnsafePickleError(
        f"the network pickle references {module}.{name}, which is not part of NVIDIA's network "
        "pickle format; nothing from the file was run. Only StyleGAN2-ADA / StyleGAN3 / legacy "
        "TF network pickles are read this way")

  def persistent_load(self, pid):
    raise CheckpointError(f"unexpected persistent id {pid!r} in a network pickle")


def is_network_pickle(data: bytes) -> bool:
  """A plain pickle (not zip, not xz, not a legacy ``torch.save`` stream)."""
  if len(data) < 2 or data[0] != 0x80:
    return False
  # A legacy torch.save starts with the pickled magic number (LONG1, 10 bytes).
  return data[2:4] != b"\x8a\x0a"


def load(path: str | os.PathLike) -> Any:
  """Reads an NVIDIA network pickle as plain records (see module doc).

  Returns the top-level object: a dict ``{G, D, G_ema, ...}`` of
  :class:`PersistentObject` for native pickles, or the tuple ``(G, D, Gs)`` of
  :class:`TFNetwork` for legacy TF pickles.

  Raises:
    UnsafePickleError: a global outside the format (nothing was executed).
    CheckpointError: the file is missing, truncated or malformed.
  """
  path = os.fspath(path)
  data = torch_pickle.read_file(path)
  with torch_pickle.errors_named(path, "network pickle", unsafe_error=UnsafePickleError):
    return _Unpickler(io.BytesIO(data)).load()


def plain(obj):
  """EasyDict / OrderedDict / numpy scalars → plain dicts, lists and Python numbers."""
  if isinstance(obj, dict):
    return {k: plain(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(plain(v) for v in obj)
  if isinstance(obj, np.generic):
    return obj.item()
  return obj


def state_dict(obj: PersistentObject, prefix: str = "") -> dict[str, np.ndarray]:
  """torch ``state_dict`` of a persistent module: parameters, persistent buffers, then children."""
  st = obj.state
  out = {}
  non_persistent = st.get("_non_persistent_buffers_set") or set()
  for name, value in (st.get("_parameters") or {}).items():
    if value is not None:
      out[prefix + name] = np.asarray(value)
  for name, value in (st.get("_buffers") or {}).items():
    if value is not None and name not in non_persistent:
      out[prefix + name] = np.asarray(value)
  for name, child in (st.get("_modules") or {}).items():
    if isinstance(child, PersistentObject):
      out.update(state_dict(child, f"{prefix}{name}."))
    elif child is not None:
      raise CheckpointError(f"module {prefix}{name} is not a persistent object")
  return out


# ----------------------------------------------------------------------------- legacy TF

_TF_G_KWARGS = {"latent_size": "z_dim", "label_size": "c_dim", "dlatent_size": "w_dim",
                "resolution": "img_resolution", "num_channels": "img_channels"}
_TF_G_KNOWN = set(_TF_G_KWARGS) | {"fmap_base", "fmap_max", "mapping_layers", "num_fp16_res",
                                   "conv_clamp", "architecture", "nonlinearity",
                                   "fused_modconv", "mapping_lrmul", "dlatent_broadcast",
                                   "truncation_psi", "truncation_cutoff", "is_template_graph",
                                   "structure", "randomize_noise", "conditioning"}


def tf_generator_kwargs(net: TFNetwork) -> dict:
  """The StyleGAN2-ADA ``Generator`` init kwargs of a TF ``G``/``Gs`` network."""
  kw = dict(net.static_kwargs)
  unknown = sorted(set(kw) - _TF_G_KNOWN)
  if unknown:
    raise CheckpointError(f"TF generator with unknown static kwargs {unknown}")
  out = {new: kw[old] for old, new in _TF_G_KWARGS.items() if old in kw}
  out.setdefault("z_dim", 512)
  out.setdefault("c_dim", 0)
  out.setdefault("w_dim", 512)
  out.setdefault("img_resolution", 1024)
  out.setdefault("img_channels", 3)
  out["mapping_kwargs"] = {"num_layers": kw.get("mapping_layers", 8)}
  out["synthesis_kwargs"] = {"channel_base": kw.get("fmap_base", 16 << 10) * 2,
                             "channel_max": kw.get("fmap_max", 512),
                             "num_fp16_res": kw.get("num_fp16_res", 0),
                             "conv_clamp": kw.get("conv_clamp", None),
                             "architecture": kw.get("architecture", "skip")}
  return out


def _tf_dense(w):
  return np.ascontiguousarray(np.asarray(w).T)


def _tf_conv(w, flip=False):
  w = np.asarray(w).transpose(3, 2, 0, 1)
  return np.ascontiguousarray(w[:, :, ::-1, ::-1] if flip else w)


def tf_to_torch_generator_state(net: TFNetwork) -> dict[str, np.ndarray]:
  """A TF ``G``/``Gs`` network's variables → the StyleGAN2-ADA PyTorch ``state_dict`` names."""
  comps = net.components
  if "mapping" not in comps or "synthesis" not in comps:
    raise CheckpointError(f"TF network {net.name!r} has no mapping/synthesis components")
  tf = {}
  for name, value in net.variables.items():
    tf[name] = value
  for cname, comp in comps.items():
    for name, value in comp.variables.items():
      tf[f"{cname}/{name}"] = value
  sd, used = {}, set()

  def take(name):
    if name not in tf:
      raise CheckpointError(f"TF generator variable {name} missing")
    used.add(name)
    return tf[name]

  if "dlatent_avg" in tf:
    sd["mapping.w_avg"] = take("dlatent_avg")
  if "mapping/LabelEmbed/weight" in tf:
    sd["mapping.embed.weight"] = _tf_dense(take("mapping/LabelEmbed/weight"))
    sd["mapping.embed.bias"] = take("mapping/LabelEmbed/bias")
  i = 0
  while f"mapping/Dense{i}/weight" in tf:
    sd[f"mapping.fc{i}.weight"] = _tf_dense(take(f"mapping/Dense{i}/weight"))
    sd[f"mapping.fc{i}.bias"] = take(f"mapping/Dense{i}/bias")
    i += 1
  res = int(net.static_kwargs.get("resolution", 1024))
  r = 4
  while r <= res:
    blk, src = f"synthesis.b{r}", f"synthesis/{r}x{r}"
    convs = [("conv1", "Conv", False)] if r == 4 else [("conv0", "Conv0_up", True),
                                                       ("conv1", "Conv1", False)]
    if r == 4:
      sd[f"{blk}.const"] = take(f"{src}/Const/const")[0]
    for dst, name, flip in convs:
      sd[f"{blk}.{dst}.weight"] = _tf_conv(take(f"{src}/{name}/weight"), flip)
      sd[f"{blk}.{dst}.bias"] = take(f"{src}/{name}/bias")
      sd[f"{blk}.{dst}.affine.weight"] = _tf_dense(take(f"{src}/{name}/mod_weight"))
      sd[f"{blk}.{dst}.affine.bias"] = take(f"{src}/{name}/mod_bias") + 1
      sd[f"{blk}.{dst}.noise_strength"] = np.asarray(take(f"{src}/{name}/noise_strength"), np.float32)
      log = int(np.log2(r))
      k = 0 if r == 4 else 2 * log - (5 if dst == "conv0" else 4)
      sd[f"{blk}.{dst}.noise_const"] = take(f"synthesis/noise{k}")[0, 0]
    if f"{src}/ToRGB/weight" in tf:
      sd[f"{blk}.torgb.weight"] = _tf_conv(take(f"{src}/ToRGB/weight"))
      sd[f"{blk}.torgb.bias"] = take(f"{src}/ToRGB/bias")
      sd[f"{blk}.torgb.affine.weight"] = _tf_dense(take(f"{src}/ToRGB/mod_weight"))
      sd[f"{blk}.torgb.affine.bias"] = take(f"{src}/ToRGB/mod_bias") + 1
    r *= 2
  left = sorted(set(tf) - used)
  if left:
    raise CheckpointError(f"TF generator variables not understood: {left[:5]}")
  return sd


_TF_D_KNOWN = {"num_channels", "resolution", "label_size", "fmap_base", "fmap_max",
               "mbstd_group_size", "mbstd_num_features", "num_fp16_res", "conv_clamp",
               "architecture", "nonlinearity", "is_template_graph", "structure"}


def tf_discriminator_kwargs(net: TFNetwork) -> dict:
  """The StyleGAN2-ADA ``Discriminator`` init kwargs of a TF ``D`` network (as legacy.py)."""
  kw = dict(net.static_kwargs)
  unknown = sorted(set(kw) - _TF_D_KNOWN)
  if unknown:
    raise CheckpointError(f"TF discriminator with unknown static kwargs {unknown}")
  return {"c_dim": kw.get("label_size", 0), "img_resolution": kw.get("resolution", 1024),
          "img_channels": kw.get("num_channels", 3), "architecture": kw.get("architecture", "resnet"),
          "channel_base": kw.get("fmap_base", 16 << 10) * 2, "channel_max": kw.get("fmap_max", 512),
          "num_fp16_res": kw.get("num_fp16_res", 0), "conv_clamp": kw.get("conv_clamp", None),
          "cmap_dim": None, "mapping_kwargs": {"num_layers": 0},
          "epilogue_kwargs": {"mbstd_group_size": kw.get("mbstd_group_size", 4),
                              "mbstd_num_channels": kw.get("mbstd_num_features", 1)}}


def tf_to_torch_discriminator_state(net: TFNetwork) -> dict[str, np.ndarray]:
  """A TF ``D`` network's variables → the StyleGAN2-ADA PyTorch ``state_dict`` names (no filters)."""
  tf = net.variables
  sd, used = {}, set()

  def take(name):
    if name not in tf:
      raise CheckpointError(f"TF discriminator variable {name} missing")
    used.add(name)
    return tf[name]

  res = int(net.static_kwargs.get("resolution", 1024))
  r = res
  while r >= 8:
    src = f"{r}x{r}"
    if r == res:
      sd[f"b{r}.fromrgb.weight"] = _tf_conv(take(f"{src}/FromRGB/weight"))
      sd[f"b{r}.fromrgb.bias"] = take(f"{src}/FromRGB/bias")
    sd[f"b{r}.conv0.weight"] = _tf_conv(take(f"{src}/Conv0/weight"))
    sd[f"b{r}.conv0.bias"] = take(f"{src}/Conv0/bias")
    sd[f"b{r}.conv1.weight"] = _tf_conv(take(f"{src}/Conv1_down/weight"))
    sd[f"b{r}.conv1.bias"] = take(f"{src}/Conv1_down/bias")
    sd[f"b{r}.skip.weight"] = _tf_conv(take(f"{src}/Skip/weight"))
    r //= 2
  if "LabelEmbed/weight" in tf:
    sd["mapping.embed.weight"] = _tf_dense(take("LabelEmbed/weight"))
    sd["mapping.embed.bias"] = take("LabelEmbed/bias")
  sd["b4.conv.weight"] = _tf_conv(take("4x4/Conv/weight"))
  sd["b4.conv.bias"] = take("4x4/Conv/bias")
  sd["b4.fc.weight"] = _tf_dense(take("4x4/Dense0/weight"))
  sd["b4.fc.bias"] = take("4x4/Dense0/bias")
  sd["b4.out.weight"] = _tf_dense(take("Output/weight"))
  sd["b4.out.bias"] = take("Output/bias")
  left = sorted(set(tf) - used)
  if left:
    raise CheckpointError(f"TF discriminator variables not understood: {left[:5]}")
  return sd
