"""The benchmark's profile attribution: concurrent ops share wall time; HLO ops map to the
model layer, direction and kind their metadata names."""

import contextlib
import io

from jaxinv.experiments.bench import bench_invert, step_profile


def _event(name, ts, dur, tid=1):
  return {"name": name, "ts": ts, "dur": dur, "tid": tid}


def test_concurrent_ops_share_wall_time():
  # a: 0-10 alone; b: 4-8 beside a (shared); c: 20-25 alone on another thread after a gap.
  events = [_event("a", 0, 10), _event("b", 4, 4, tid=2), _event("c", 20, 5, tid=2)]
  shares, busy, overlap = step_profile.wall_shares(events)
  assert shares == {"a": 6 + 2, "b": 2, "c": 5}
  assert busy == 15 and overlap == 4


HLO = """\
%fused_computation.1 (p0: f32[4,8], p1: f32[8,8]) -> f32[4,8] {
  %p0 = f32[4,8]{1,0} parameter(0)
  %p1 = f32[8,8]{1,0} parameter(1)
  ROOT %dot.1 = f32[4,8]{1,0} dot(%p0, %p1), lhs_contracting_dims={1}, rhs_contracting_dims={0}, operand_precision={highest,highest}
}

%fused_computation.2 (p0: f32[1,4,4,8], p1: f32[3,3,8,8]) -> f32[1,4,4,8] {
  %p0 = f32[1,4,4,8]{3,2,1,0} parameter(0)
  %p1 = f32[3,3,8,8]{3,2,1,0} parameter(1)
  ROOT %conv = f32[1,4,4,8]{3,2,1,0} convolution(%p0, %p1), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f
}

ENTRY %main (x: f32[4,8]) -> f32[4,8] {
  %x = f32[4,8]{1,0} parameter(0)
  %ynn_fusion.1 = f32[4,8]{1,0} fusion(%x, %x), kind=kCustom, calls=%fused_computation.1, metadata={op_name="jit(step)/vmap(transpose(jvp(PGGANGenerator)))/layer5/dot_general"}
  %ynn_fusion.2 = f32[1,4,4,8]{3,2,1,0} fusion(%x, %x), kind=kCustom, calls=%fused_computation.2, metadata={op_name="jit(step)/vmap(jvp(VGG16Features))/features/7/conv_general_dilated"}
  ROOT %add.3 = f32[4,8]{1,0} add(%x, %x), metadata={op_name="jit(step)/vmap(jvp())/add"}
}
"""


def test_classify_reads_scope_direction_and_kind():
  ops = step_profile.classify(HLO)
  assert ops["ynn_fusion.1"] == ("PGGANGenerator/layer5", "backward", "dot (highest precision)")
  assert ops["ynn_fusion.2"] == ("VGG16Features/features/7", "forward", "convolution")
  assert ops["add.3"] == ("(outside a model: loss, update)", "forward", "other (copies, element-wise)")


def test_bench_profile_attributes_the_tiny_step(tmp_path):
  """``--tiny --profile``: a real trace of the tiny setting, its time attributed to the
  generator's layers in both directions (the table of the benchmark's output)."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    bench_invert.main(["--tiny", "--batches", "1", "--dtypes", "float32", "--repeats", "1",
                       "--profile", str(tmp_path)])
  text = out.getvalue()
  table = text[text.index("profile (auto, float32, B=1"):]
  rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[3:]}
  layers = [k for k in rows if k.startswith("PGGANGenerator/layer")]
  assert len(layers) >= 3, table
  busy = float(table.splitlines()[1].split("busy ")[1].split(",")[0])
  total, forward, backward = (float(rows["all"][0]), sum(map(float, rows["all"][1:5])),
                              sum(map(float, rows["all"][5:9])))
  assert 0 < total <= busy * 1.001, table
  assert forward > 0 and backward > 0, table
