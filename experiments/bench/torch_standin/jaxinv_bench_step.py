"""A PyTorch RE-IMPLEMENTATION of the official mGANprior inversion loop, for timing: NOT the
official code. It follows the ``--official-src`` runner protocol of
``experiments.bench.bench_invert.official_figures`` so the benchmark can run it side by side:

  python -m experiments.bench.bench_invert ... --official-src experiments/bench/torch_standin

It runs the benchmark's problem the way the official loop runs it: one image at a time, PyTorch
autograd with the generator's and VGG's weights requiring grad (so their gradients are computed
and discarded every step, as there), ``torch.optim.SGD`` on ``z [N, D]`` and ``alpha [N, C]``.
The model is written from jaxinv's own definitions (genforce PGGAN as in
``jaxinv.models.pggan``, torchvision VGG16 features, mGANprior's composition and loss as in
``jaxinv.inversion``), with the very weights, target and initial latents the benchmark builds
(``bench_invert.build`` with the same seeds), converted to NCHW / OIHW. One thing differs from the
official loss on purpose: the target's VGG features are computed once, as jaxinv does, which can
only make this stand-in faster than the official loop.

Prints one JSON line: ``cpu_s_per_step`` (process CPU time), ``wall_s_per_step``, ``loss`` (per
step, before each update, as jaxinv's trajectory), ``threads``, ``torch``.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _pixel_norm(x):
  return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


def _param(a):
  return torch.nn.Parameter(torch.from_numpy(np.array(a, np.float32, order="C", copy=True)))


class PGGAN(torch.nn.Module):
  """genforce PGGAN layers [start, end) in NCHW, from jaxinv's HWIO params (same layer indexing)."""

  def __init__(self, gparams, gcfg):
    super().__init__()
    self.cfg = gcfg
    self.names = gcfg.layer_names()
    self.w = torch.nn.ParameterDict()
    self.b = torch.nn.ParameterDict()
    for name in self.names:
      w = np.asarray(gparams[name]["weight"])
      if name != "layer0":
        w = w.transpose(3, 2, 0, 1)                    # HWIO → OIHW
      self.w[name] = _param(w)
      self.b[name] = _param(gparams[name]["bias"])

  def forward(self, x, start, end):
    for i in range(start, end):
      name = self.names[i]
      w, b = self.w[name], self.b[name]
      x = _pixel_norm(x)
      if name == "output":
        scale = 1.0 / math.sqrt(w.shape[1])
        return F.conv2d(x, w * scale) + b.view(1, -1, 1, 1)
      if i == 0:                                         # dense 4×4 (kernel read flipped)
        scale = math.sqrt(2.0) / math.sqrt(16 * w.shape[2])
        x = torch.einsum("nk,hwkc->nchw", x.flatten(1), torch.flip(w, (0, 1)) * scale)
      else:
        if i % 2 == 0:
          x = F.interpolate(x, scale_factor=2, mode="nearest")
        scale = math.sqrt(2.0) / math.sqrt(9 * w.shape[1])
        x = F.conv2d(x, w * scale, padding=1)
      x = F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2)
    return x


class VGGFeatures(torch.nn.Module):
  def __init__(self, vparams, num_modules):
    super().__init__()
    from jaxinv.models import vgg as vgg_lib
    self.mods = vgg_lib.VGG16_MODULES[:num_modules]
    self.w = torch.nn.ParameterDict()
    self.b = torch.nn.ParameterDict()
    for i, m in enumerate(self.mods):
      if m[0] == "conv":
        p = vparams["features"][str(i)]
        self.w[str(i)] = _param(np.asarray(p["weight"]).transpose(3, 2, 0, 1))
        self.b[str(i)] = _param(p["bias"])

  def forward(self, x):
    for i, m in enumerate(self.mods):
      if m[0] == "conv":
        x = F.conv2d(x, self.w[str(i)], self.b[str(i)], padding=1)
      elif m[0] == "relu":
        x = F.relu(x)
      else:
        x = F.max_pool2d(x, 2)
    return x


def _load_bench_invert():
  """``bench_invert`` from beside this folder: the torch venv running this need not have jaxinv
  installed, only importable from the checkout."""
  import importlib.util
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench_invert.py")
  spec = importlib.util.spec_from_file_location("jaxinv_bench_invert", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def main(argv=None):
  p = argparse.ArgumentParser()
  for k in ("resolution", "fmaps-base", "fmaps-max", "codes", "layer", "vgg-layer", "vgg-size",
            "steps"):
    p.add_argument(f"--{k}", type=int, required=True)
  p.add_argument("--lr", type=float, required=True)
  a = p.parse_args(argv)
  sys.path.insert(0, REPO)
  bench_invert = _load_bench_invert()
  import jax
  import jax.numpy as jnp
  from jaxinv.models import pggan, vgg as vgg_lib

  cfg = {"resolution": a.resolution, "fmaps_base": a.fmaps_base, "fmaps_max": a.fmaps_max,
         "codes": a.codes, "layer": a.layer, "vgg_layer": a.vgg_layer, "vgg_size": a.vgg_size,
         "lr": a.lr, "conv_impl": "direct"}
  _, optimizer, shared, space, batch_data = bench_invert.build(cfg, "float32")
  state, data = bench_invert._inputs(space, optimizer, batch_data, 1)
  init = {k: np.asarray(v[0]) for k, v in state.variables.items()}
  target = torch.from_numpy(np.asarray(data["observation"][0]).transpose(2, 0, 1)[None].copy())
  gcfg = pggan.PGGANConfig(resolution=a.resolution, fmaps_base=a.fmaps_base, fmaps_max=a.fmaps_max)
  del jax, jnp
  gparams = shared["generator"]
  gen = PGGAN(gparams.get("params", gparams), gcfg)     # the raw weights, not the prepared kernels
  vgg = VGGFeatures(shared["vgg"], a.vgg_layer)
  mean = torch.tensor(vgg_lib.IMAGENET_MEAN).view(1, 3, 1, 1)
  std = torch.tensor(vgg_lib.IMAGENET_STD).view(1, 3, 1, 1)

  def features(img):
    x = (img * 0.5 + 0.5 - mean) / std
    return vgg(F.interpolate(x, size=(a.vgg_size, a.vgg_size), mode="nearest"))

  with torch.no_grad():
    target_features = features(target)

  def run(steps):
    z = torch.nn.Parameter(torch.from_numpy(init["z"].copy()))
    alpha = torch.nn.Parameter(torch.from_numpy(init["alpha"].copy()))
    opt = torch.optim.SGD([z, alpha], lr=a.lr)
    losses = []
    for _ in range(steps):
      opt.zero_grad()
      gen.zero_grad(set_to_none=True)
      vgg.zero_grad(set_to_none=True)
      f = gen(z, 0, a.layer)                                    # [N, C, H, W]
      fused = (f * alpha[:, :, None, None]).sum(0, keepdim=True) / a.codes
      img = gen(fused, a.layer, gcfg.num_layers)
      loss = F.mse_loss(img, target) + 0.001 * torch.mean(torch.abs(features(img) - target_features))
      loss.backward()
      opt.step()
      losses.append(float(loss.detach()))
    return losses

  run(1)                                                          # warm-up
  c0, t0 = time.process_time(), time.perf_counter()
  losses = run(a.steps)
  wall, cpu = time.perf_counter() - t0, time.process_time() - c0
  print(json.dumps({"cpu_s_per_step": cpu / a.steps, "wall_s_per_step": wall / a.steps,
                    "loss": losses, "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "what": "PyTorch re-implementation of the official loop (not the official code)"}))


if __name__ == "__main__":
  main()
