"""PTI's generator read as PTI reads it, from the NVIDIA network pickle (fixture e4e_pti), and
from the same G_ema as a bare state_dict: both convert (``jaxinv convert``) to the generator
the rosinality file gives, and phase 2 run on the pickle's generator reproduces the official
run.

Tolerances: the conversions are renamings/reshapes of the same float32 tensors, so the
parameters must be bit-identical. Phase 2: as tests/golden/test_e4e_pti_tune.py (README
§Tolerances, from the 1-vs-2-thread reruns): loss / l2 / lpips <= 1e-4 relative [floor
1.5e-7], reg <= 1e-6 absolute [3.4e-9], deltas <= 5e-5 everywhere and <= 1e-6 for 99.9% of the
entries [8.0e-6 / 1.2e-7], final image <= 1e-4 · max(1, max|x|) [2.5e-6], step counts exact.
"""

import json

import jax
import numpy as np
import pytest

from jaxinv import converters
from jaxinv.cli import main
from jaxinv.converters import nvidia_stylegan2_ada as NV
from jaxinv.converters.base import ConversionError
from jaxinv.converters.table import apply_rules, flatten_paths
from jaxinv.inversion.methods import pti
from jaxinv.io import torch_pickle
from jaxinv.models.registry import load_model
from tests.conftest import assert_close
from tests.golden import _pti_common as C
from tests.golden import test_e4e_pti_tune as T


def _state_dict_files(g):
  """The case's files (expected.json -> files) that hold a bare StyleGAN2-ADA G state_dict."""
  out = []
  for name in g.expected["files"]:
    if name.endswith((".pt", ".pth")):
      try:
        obj = torch_pickle.load(g.path(name))
      except Exception:   # noqa: BLE001 - other kinds of file in the folder
        continue
      if NV.STATE_DICT.detect(obj):
        out.append(name)
  return out


@pytest.fixture(scope="module")
def converted(golden, tmp_path_factory):
  g = golden(C.FOLDER)
  d = tmp_path_factory.mktemp("nvidia")
  pkl = g.expected["pti"]["build"]["pickle"]
  dests = {"pickle": str(d / "pickle"), "rosinality": str(d / "rosinality")}
  assert main(["convert", str(g.path(pkl["file"])), dests["pickle"]]) == 0
  assert main(["convert", str(g.path(g.expected["e4e"]["rosinality_conversion"]["file"])),
               dests["rosinality"]]) == 0
  clamp = pkl["G_ema_init_kwargs"]["synthesis_kwargs"].get("conv_clamp")
  for i, name in enumerate(_state_dict_files(g)):
    dests[f"state_dict{i}"] = str(d / f"state_dict{i}")
    assert main(["convert", str(g.path(name)), dests[f"state_dict{i}"],
                 "--option", f"conv_clamp={clamp}"]) == 0
  return g, {k: load_model(v) for k, v in dests.items()}


def test_pickle_state_dict_and_rosinality_give_one_generator(converted):
  g, models = converted
  pkl = g.expected["pti"]["build"]["pickle"]
  ref = models["pickle"]
  assert ref.extras["nvidia_part"] == "G_ema"
  assert ref.config.num_ws == len(g.expected["pti"]["run"]["noise_names"]) + 1
  want = flatten_paths(ref.params)
  for name, m in models.items():
    # rosinality's format records no conv_clamp (its model has none): the clamp never acts here
    # (largest |activation| 8.0 vs 256·√2, README §PTI.1); everything else is equal.
    if name == "rosinality":
      assert m.config == ref.config.__class__(**{**ref.config.__dict__, "conv_clamp": None})
    else:
      assert m.config == ref.config, name
    got = flatten_paths(m.params)
    assert set(got) == set(want), name
    for k in want:
      np.testing.assert_array_equal(got[k], want[k], err_msg=f"{name}: {k}")
  # the state_dict keys are the pickle's G_ema keys (expected.json lists them with shapes)
  files = _state_dict_files(g)
  if not files:
    pytest.skip("this case ships no bare G state_dict (pickle and rosinality file compared)")
  sd = torch_pickle.load(g.path(files[0]))
  assert {k: list(v.shape) for k, v in sd.items()} == pkl["G_ema_state_dict"]


def test_state_dict_config_of_the_released_generator(golden):
  """NVIDIA's FFHQ-1024 G_ema shapes (stock_key_shapes.json): the architecture is read from the
  shapes alone and every tensor finds its place (zero-copy stand-in arrays)."""
  g = golden(C.FOLDER)
  stock = json.loads(g.path("stock_key_shapes.json").read_text())["nvidia_ffhq_1024_G_ema"]
  sd = {k: np.broadcast_to(np.float32(0), v) for k, v in stock["state_dict"].items()}
  for k in sd:
    if k.endswith("resample_filter"):
      sd[k] = np.asarray(NV.make_kernel([1, 3, 3, 1]))
  assert converters.detect(sd) == NV.STATE_DICT.NAME
  conv = NV.convert_state_dict(sd)
  assert conv.config.num_ws == stock["num_ws"]
  assert conv.config.resolution == max(int(k.split(".")[1][1:]) for k in sd
                                       if k.startswith("synthesis.b"))
  bad = {**sd, "synthesis.b4.conv1.affine.weight": np.zeros((3, 3), np.float32)}
  with pytest.raises(ConversionError):
    NV.convert_state_dict(bad)


def _expected_delta_nvidia_layout(g, a, cfg):
  """The fixture's deltas (NVIDIA names) in this generator's layout through the NVIDIA
  converter's own rules (all linear), zero for what phase 2 does not tune."""
  sd = torch_pickle.load(g.path(_state_dict_files(g)[0])) if _state_dict_files(g) else None
  if sd is None:
    from jaxinv.io import nvidia_pickle
    obj = nvidia_pickle.load(g.path(g.expected["pti"]["build"]["pickle"]["file"]))
    sd = nvidia_pickle.state_dict(obj["G_ema"])
  delta = {k: np.asarray(a.get(f"pti.tune.G_delta.{k}", np.zeros_like(v)), np.float32).reshape(
      v.shape) for k, v in sd.items()}
  tree = apply_rules(delta, NV.RULES_COMMON + NV._layer_rules(cfg), [NV.FILTER_KEYS])
  return flatten_paths(tree["synthesis"])


def test_phase2_on_the_pickle_generator(converted):
  """The official phase 2 (main run and early stop: two generator copies in one program) on
  the generator converted from the NVIDIA pickle."""
  g, models = converted
  m = models["pickle"]
  z = g.npz("fixtures.npz")
  a = {k: z[k] for k in z.files if k.startswith("pti.")}
  cfg = C.config(g)
  thresholds = np.asarray([cfg.lpips_value_threshold, g.expected["pti"]["earlystop"]["threshold"]],
                          np.float32)
  reg_z = np.repeat(a["pti.tune.reg_z"][:cfg.max_pti_steps], 2, axis=1)
  w = np.repeat(a["pti.w_pivot"], 2, axis=0)
  x = np.repeat(C.nhwc(a["pti.image"]), 2, axis=0)
  lp = C.lpips_fn(g)
  res = jax.jit(lambda w, x, zz, t: pti.tune(m.module, m.params, w, x, lp, cfg, zz, t))(
      w, x, reg_z, thresholds)
  res = jax.tree.map(np.asarray, res)
  for col, prefix, run in ((0, "pti.tune", g.expected["pti"]["run"]["tune"]),
                           (1, "pti.earlystop", g.expected["pti"]["earlystop"])):
    assert int(res["steps"][col]) == run["optimizer_steps"]
    ev = res["evaluated"][:, col]
    assert int(ev.sum()) == run["calc_loss_calls"]
    for key in ("loss", "l2", "lpips"):
      assert_close(res[key][ev, col], a[f"{prefix}.{key}"], rtol=T.LOSS_RTOL, what=f"{prefix} {key}")
    assert_close(res["reg"][ev, col], a[f"{prefix}.reg"], atol=T.REG_ATOL, what=f"{prefix} reg")
    exp = a[f"{prefix}.final_image"]
    assert_close(C.nchw(res["final_image"][col:col + 1]), exp,
                 atol=T.FORWARD_RTOL * max(1, np.abs(exp).max()), what=f"{prefix} final image")
  want = _expected_delta_nvidia_layout(g, a, m.config)
  got = flatten_paths(jax.tree.map(lambda v: v[0], res["delta"]))
  assert set(got) <= set(want)
  errs = np.concatenate([np.abs(got[k] - want[k]).ravel() for k in got])
  assert_close(errs, np.zeros_like(errs), atol=T.DELTA_ATOL, what="G_delta")
  assert np.mean(errs <= T.DELTA_TIGHT) >= T.DELTA_TIGHT_FRACTION
  for k in set(want) - set(got):
    assert not want[k].any(), k
