"""The wheel holds everything its commands need: built, installed into a fresh venv and run
from another directory (DGP with a shipped schedule, a shipped sweep config, the demo)."""

import json
import os
import pathlib
import shutil
import site
import subprocess
import sys

import pytest

from tests.conftest import REPO, golden_root

slow = pytest.mark.slow  # builds a wheel and runs commands in subprocesses (~3 min in all)


def test_sources_import_moved_packages_under_jaxinv():
  """converters/ and experiments/ exist only as jaxinv.* once installed: no code may import the
  top-level names (it would work in a checkout and fail from the wheel)."""
  import re
  bad = re.compile(r"^\s*(from|import)\s+(converters|experiments)\b", re.M)
  offenders = []
  for top in ("jaxinv", "converters", "experiments", "tests"):
    for path in (REPO / top).rglob("*.py"):
      for m in bad.finditer(path.read_text(encoding="utf-8")):
        offenders.append(f"{path.relative_to(REPO)}: {m.group(0).strip()}")
  assert not offenders, "import jaxinv.converters / jaxinv.experiments instead: " + "; ".join(offenders)


def _source_copy(dest: pathlib.Path):
  """The files a fresh clone has (tracked + untracked-but-not-ignored), tests excluded."""
  files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout.split()
  for f in files:
    if f.startswith("tests/") or not (REPO / f).is_file():
      continue
    (dest / f).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / f, dest / f)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
  if shutil.which("git") is None or not (REPO / ".git").exists():
    pytest.skip("needs a git checkout to know the clone's files")
  root = tmp_path_factory.mktemp("install")
  src, wheels, env_dir = root / "src", root / "wheels", root / "venv"
  src.mkdir()
  _source_copy(src)
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(wheels), str(src)], check=True, capture_output=True)
  (wheel,) = wheels.glob("jaxinv-*.whl")
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
  py = env_dir / "bin" / "python"
  purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                           check=True, capture_output=True, text=True).stdout.strip()
  # Dependencies come from this interpreter's site-packages (no downloads); they go after the
  # venv's own, and that folder's .pth files (an editable jaxinv) are not processed.
  pathlib.Path(purelib, "_test_deps.pth").write_text(
      "\n".join(p for p in site.getsitepackages() if os.path.isdir(p)) + "\n")
  subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                  "--no-index", "-q", str(wheel)], check=True, capture_output=True)
  work = root / "elsewhere"
  work.mkdir()
  return env_dir, work


def _run(venv, *argv, **env):
  env_dir, work = venv
  e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JAXINV_DATA_ROOT")}
  e.update(env)
  p = subprocess.run(argv, cwd=work, env=e, capture_output=True, text=True, timeout=900)
  assert p.returncode == 0, f"{argv}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
  return p


@slow
def test_installed_names_live_under_jaxinv(venv):
  env_dir, _ = venv
  p = _run(venv, str(env_dir / "bin" / "python"), "-c",
           "import importlib.util as u, json, jaxinv, jaxinv.converters, jaxinv.experiments.sweep; "
           "print(json.dumps([jaxinv.__file__, u.find_spec('converters') is None, "
           "u.find_spec('experiments') is None]))")
  path, no_converters, no_experiments = json.loads(p.stdout.strip().splitlines()[-1])
  assert path.startswith(str(env_dir)) and no_converters and no_experiments


@slow
def test_installed_dgp_with_shipped_schedule(venv, tmp_path):
  env_dir, _ = venv
  gd = golden_root() / "dgp"
  ck = json.loads((gd / "expected.json").read_text())["checkpoint"]
  image = golden_root().parent / "data" / "dgp_examples" / "ILSVRC2012_val_00042095.JPEG"
  if not image.is_file():
    pytest.skip(f"{image} missing")
  jx = str(env_dir / "bin" / "jaxinv")
  _run(venv, jx, "convert", str(gd / ck["G_file"]), str(tmp_path / "G"))
  _run(venv, jx, "convert", str(gd / ck["D_file"]), str(tmp_path / "D"))
  _run(venv, jx, "invert", "--method", "dgp", "--generator", str(tmp_path / "G"), "--discriminator",
       str(tmp_path / "D"), "--class", "0", "--schedule", "in128_SR_D_biased", "--images", str(image),
       "--iterations", "1", "1", "1", "1", "1", "--select-num", "2", "--out", str(tmp_path / "o"))
  assert (tmp_path / "o" / "result.npz").is_file()


@slow
def test_installed_sweep_config_and_demo(venv, tmp_path):
  env_dir, _ = venv
  py = str(env_dir / "bin" / "python")
  # the shipped tiny config names ../shared/... relative to the documented data root
  _run(venv, py, "-m", "jaxinv.experiments.sweep", "--config", "tiny:test", "--out",
       str(tmp_path / "sweep"), "--no-progress", JAXINV_DATA_ROOT=str(REPO))
  lines = (tmp_path / "sweep" / "results.jsonl").read_text().splitlines()
  assert len(lines) == 16
  _run(venv, str(env_dir / "bin" / "jaxinv"), "demo", "--out", str(tmp_path / "demo"), "--tasks",
       "reconstruct", "--codes", "1", "--layers", "2", "--images", "1", "--steps", "2",
       "--no-encoder", "--no-progress")
  assert (tmp_path / "demo" / "results.csv").is_file()
