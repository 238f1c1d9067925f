"""DGP's schedules: the stages of an official experiment script, as data."""

from __future__ import annotations

import dataclasses
import json
import os

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                          "assets", "dgp_schedules")

#: Modes whose observation is degraded; every other mode (jitter, morphing, ...) reconstructs.
DEGRADING_MODES = ("SR", "colorization", "inpainting", "hybrid")


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
