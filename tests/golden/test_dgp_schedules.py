"""DGP schedules as data: jaxinv/assets/dgp_schedules/*.json vs every official script's parsed table."""

import numpy as np
import pytest

from jaxinv.inversion.methods import dgp
from jaxinv.models import biggan
from tests.conftest import expected_at_collection, params
from tests.golden import _dgp

TASKS = list(expected_at_collection("dgp").get("trajectories", {}))


def test_every_official_script_has_a_config(golden):
  sched = golden("dgp").path("schedules.json")
  import json
  scripts = json.loads(sched.read_text())["scripts"]
  assert scripts
  for script, entry in scripts.items():
    s = dgp.load_schedule(_dgp.config_name(script))
    assert s.dgp_mode == entry["dgp_mode"]
    assert s.update_embed == entry["update_embed"] and s.update_G == entry["update_G"]
    assert s.select_num == entry["select_z"]["select_num"]
    assert s.sample_std == entry["select_z"]["sample_std"]
    assert s.betas == (0.0, 0.999) and s.eps == 1e-8
    assert len(s.stages) == len(entry["stages"])
    ngroups = len(entry["stages"][0]["group_lrs"])
    for st, ref in zip(s.stages, entry["stages"]):
      assert st.iterations == ref["iterations"] and st.z_lr == ref["z_lr"]
      assert st.ftr_num == ref["ftr_num"] and st.use_in == ref["use_in"]
      assert st.w_D_loss == ref["w_D_loss"] and st.w_mse == ref["w_mse"]
      assert s.w_nll == ref["w_nll"]
      np.testing.assert_allclose(st.group_lrs(ngroups), ref["group_lrs"], rtol=1e-12,
                                 err_msg=f"{script} stage {ref['stage']}")


@pytest.mark.parametrize("task", params(TASKS))
def test_trajectory_lrs_and_groups(golden, task):
  """Per-step lrs (z and each G group) and the G param groups DGP's optimiser holds."""
  gd = golden("dgp")
  te = gd.expected["trajectories"][task]
  s = dgp.Schedule.from_lists(te["config"], dgp_mode=te["dgp_mode"])
  ngroups = len(te["optimizer_param_groups"])
  table = dgp.lr_table(s, ngroups)
  assert table.shape[0] == len(te["steps"])
  for k, step in enumerate(te["steps"]):
    np.testing.assert_allclose(table[k, 0], step["lr_z"], rtol=1e-6)
    np.testing.assert_allclose(table[k, 1:], step["lr_G_groups"], rtol=1e-6)
  for gid, names in enumerate(te["optimizer_param_groups"]):
    for name in names:
      if ".in1." in name or ".in2." in name:
        continue  # DGP's IN affine: requires_grad=False, and not part of our param tree
      assert biggan.param_group(_param_path(name), s.update_embed) == gid, name
  assert biggan.param_group("output_layer_2/weight") is None
  assert biggan.param_group("shared/weight", False) is None
  assert biggan.param_group("blocks_0_0/conv1/u0") is None


def _param_path(name):
  parts = name.split(".")
  if parts[0] == "blocks":
    return "/".join([f"blocks_{parts[1]}_{parts[2]}"] + parts[3:])
  return "/".join(parts)


def test_list_form_round_trip_and_short_lists():
  s = dgp.load_schedule("in128_colorization")
  assert dgp.Schedule.from_lists(s.to_lists()) == s
  # DGP indexes per-stage lists; a list shorter than iterations repeats its last value.
  short = dgp.Schedule.from_lists({"iterations": [3, 4], "z_lrs": [0.1, 0.01], "G_lrs": [1e-4, 1e-5],
                                   "ftr_num": [7], "w_mse": [1.0], "ft_num": [2, 3]})
  assert [st.ftr_num for st in short.stages] == [7, 7] and short.total_steps == 7
  assert short.stages[1].group_lrs(4) == [1e-5, 1e-5, 1e-5, 0.0]
  with pytest.raises(FileNotFoundError, match="known"):
    dgp.load_schedule("no_such_schedule")
