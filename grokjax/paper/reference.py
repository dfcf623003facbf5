"""The authors' released per-seed data, read from a checkout the user supplies.

`load(root)` reads every `data/<experiment>/metrics/*.npz` of a checkout of
ClevixLab/critical-norm-grokking into `RefCell`s: one cell (modulus, train fraction, model,
weight decay, learning rate, arm, rho) with its per-seed grok times and norms. grokjax never
ships this data; `experiments/reproduce.py --reference DIR` reads it where the user put it.

Their estimator, which a comparison names: T_grok is the first step test accuracy reaches
0.90 on their logarithmic evaluation grid (about 360 points, 2.5-3 % apart late in training,
so a time is known to a few percent), -1 when a seed never grokked in `max_steps`; they drop
those seeds before a median; each of their experiments draws its own seeds.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import numpy as np

from grokjax.analysis.stats import finite_or_none
from grokjax.engine.reduce import norm_peak, value_at

# Their floor (`floor_steps`): the first logged step at which a seed's mean train loss is at
# most 2^-22, twice the smallest non-zero float32 log-softmax loss (log1p(2^-23) ~ 2^-23): the
# level where the loss's exponential fall under a clamp meets float32's discrete floor (it
# then plateaus near 7e-8 until the seed groks).
FLOOR_LOSS = 2.0 ** -22

# Their arm names -> ours: the free control, a sustained clamp, a one-shot rescale of the
# norm, a one-shot factor of one weight group.
ARMS = {"ctrl": "free", "none": "free", "clamp": "clamp", "rescale": "oneshot", "layer": "kick"}
GROUPS = {"all": "all", "embed": "embedding", "hidden": "hidden", "out": "output",
          "unembed": "output", "mlp": "mlp", "attn": "attention"}
# Their attention-model experiments with LayerNorm (tfnoln and tfnoln_long have none).
LAYERNORM_EXPERIMENTS = ("tfgrok", "tfnormint")


@dataclasses.dataclass(frozen=True)
class RefCell:
  """One of their cells: the configuration and, per seed, T_grok, censoring and the norm."""
  experiment: str
  file: str
  p: int
  frac: float
  d: int
  hidden: int
  arch: str
  wd: float
  lr: float
  arm: str
  rho: float | None
  group: str | None
  budget: int
  t_grok: np.ndarray  # per seed; the budget where censored
  censored: np.ndarray
  norm_at_grok: np.ndarray  # NaN where censored
  layernorm: bool = False
  t_floor: np.ndarray | None = None  # per seed, `floor_steps` (-1: never); None: no loss logged
  # per seed, where their files log T_mem and the norm curve (else None): T_mem (-1: never),
  # ||W|| there, and the norm's peak between T_mem and T_grok (`reduce.norm_peak`, on their
  # evaluation grid)
  t_mem: np.ndarray | None = None
  norm_at_mem: np.ndarray | None = None
  t_peak: np.ndarray | None = None
  norm_peak: np.ndarray | None = None

  def grokked_after_floor(self) -> tuple[int, int] | None:
    """(seeds that grokked at or after their floor step, seeds that grokked), or None when
    the file logs no train loss."""
    if self.t_floor is None:
      return None
    g = ~self.censored
    return int(np.sum(g & (self.t_floor >= 0) & (self.t_grok >= self.t_floor))), int(g.sum())

  @property
  def key(self) -> tuple:
    return (self.p, round(self.frac, 3), self.d, self.hidden, self.arch, round(self.wd, 6),
            round(self.lr, 8), self.arm, None if self.rho is None else round(self.rho, 3),
            self.group, self.layernorm)


class ReferenceError(ValueError):
  """The reference folder is not a checkout with per-seed metrics (one-line message)."""


def _scalar(z, name, default=None):
  if name in z.files:
    v = z[name]
    return v.item() if v.shape == () else v
  return default


def _from_name(name: str) -> dict:
  """Arm, rho and group from a file name (the npz scalars cover the rest)."""
  out = {}
  m = re.search(r"_(ctrl|none|clamp|rescale|layer)(?:_([a-z]+?))?(?:_rho([0-9.]+?))?(?:_f([0-9.]+?))?"
                r"(?:_lr[0-9.e+-]+)?\.npz$", name)
  if m:
    out["arm"] = m.group(1)
    if m.group(2):
      out["group"] = m.group(2)
    if m.group(3):
      out["rho"] = float(m.group(3))
  else:
    out["arm"] = "ctrl"  # a free-training file names no arm
  return out


def floor_steps(steps: np.ndarray, train_loss: np.ndarray, level: float = FLOOR_LOSS
                ) -> np.ndarray:
  """Per seed, the first logged step with mean train loss <= level (-1: never).

  >>> floor_steps(np.array([0, 10, 20]), np.array([[1.0, 3e-7, 1e-7], [1.0, 1e-3, 1e-3]]))
  array([20, -1])
  """
  below = np.asarray(train_loss, float) <= level
  return np.where(below.any(1), np.asarray(steps)[np.argmax(below, 1)], -1).astype(np.int64)


def read_cell(path: str, experiment: str) -> RefCell:
  """One npz of theirs as a RefCell."""
  try:
    z = np.load(path, allow_pickle=False)
  except Exception as e:  # numpy raises several kinds for a damaged file
    raise ReferenceError(f"{path}: not a readable npz ({type(e).__name__})") from None
  if "T_grok_per_seed" not in z.files:
    raise ReferenceError(f"{path}: no T_grok_per_seed")
  named = _from_name(os.path.basename(path))
  arm_text = str(_scalar(z, "arm", "") or "")
  theirs = arm_text if arm_text in ARMS else named["arm"]
  rho = _scalar(z, "rho", named.get("rho"))
  arm = ARMS.get(theirs, theirs)
  group = GROUPS.get(named.get("group"), named.get("group"))
  if arm == "kick":
    group, rho = group or "all", None
  if arm == "clamp" and group is not None:
    arm = "clamp_group"
  t = np.asarray(z["T_grok_per_seed"], float)
  budget = int(_scalar(z, "max_steps", np.max(t) if len(t) else 0))
  censored = t < 0
  if "wn_at_grok" in z.files:
    norm = np.asarray(z["wn_at_grok"], float)
  elif "weight_norm" in z.files and "steps" in z.files:
    steps = np.asarray(z["steps"])
    col = np.clip(np.searchsorted(steps, np.where(censored, 0, t)), 0, len(steps) - 1)
    norm = np.asarray(z["weight_norm"], float)[np.arange(len(t)), col]
  else:
    norm = np.full(len(t), np.nan)
  norm = np.where(censored, np.nan, norm)
  contraction = {}
  if {"T_mem_per_seed", "weight_norm", "steps"} <= set(z.files):
    t_mem = np.asarray(z["T_mem_per_seed"], float).astype(np.int64)
    t_mem = np.where(t_mem >= 0, t_mem, -1)
    wn = np.asarray(z["weight_norm"], float)
    t_peak, top = norm_peak(z["steps"], wn, t_mem, np.where(censored, -1, t).astype(np.int64))
    contraction = dict(t_mem=t_mem, norm_at_mem=value_at(z["steps"], wn, t_mem), t_peak=t_peak,
                       norm_peak=top)
  heads = _scalar(z, "n_heads", None)
  arch = "transformer" if ("_h" in os.path.basename(path) and "_H512" in os.path.basename(path)
                           ) or heads is not None else "mlp"
  return RefCell(experiment=experiment, file=os.path.basename(path), p=int(_scalar(z, "p")),
                 frac=float(_scalar(z, "alpha", 0.4)), d=int(_scalar(z, "d_model", 128)),
                 hidden=int(_scalar(z, "H", 256)), arch=arch, wd=float(_scalar(z, "lam", 1.0)),
                 lr=float(_scalar(z, "lr")), arm=arm,
                 rho=None if arm == "free" or rho is None else float(rho), group=group,
                 budget=budget, t_grok=np.where(censored, budget, t), censored=censored,
                 norm_at_grok=norm, layernorm=experiment in LAYERNORM_EXPERIMENTS,
                 t_floor=(floor_steps(z["steps"], z["train_loss"])
                          if {"steps", "train_loss"} <= set(z.files) else None), **contraction)


def load(root: str) -> list[RefCell]:
  """Every cell under `root`/data/*/metrics/ (root: a checkout of the authors' repository)."""
  files = sorted(glob.glob(os.path.join(root, "data", "*", "metrics", "*.npz")))
  if not os.path.isdir(root):
    raise ReferenceError(f"--reference: {root!r} is not a folder")
  if not files:
    raise ReferenceError(f"--reference: {root!r} holds no data/<experiment>/metrics/*.npz "
                         "(a checkout of ClevixLab/critical-norm-grokking)")
  cells = []
  for f in files:
    experiment = os.path.basename(os.path.dirname(os.path.dirname(f)))
    try:
      cells.append(read_cell(f, experiment))
    except (ReferenceError, TypeError, ValueError, KeyError):
      continue  # a file of another layout (their FSS side studies): not a cell we compare
  return cells


def as_rows(cells: list[RefCell], experiment: str, hold_arm: str = "clamp") -> list[dict]:
  """Every run of one of their experiments as a row the report's statistics read (arm,
  rho, group, seed, t_grok, grokked, censored, diverged), their sustained clamps named
  `hold_arm` (the interventions call them "hold"). A seed is its index in their files:
  their experiments match seeds across arms, as ours do."""
  out = []
  for c in cells:
    if c.experiment != experiment:
      continue
    arm = hold_arm if c.arm == "clamp" else c.arm
    rho = None if c.rho is None else round(c.rho, 3)
    extra = lambda i: ({} if c.t_mem is None else dict(
        t_mem=int(c.t_mem[i]), norm_at_mem=finite_or_none(c.norm_at_mem[i]),
        t_peak=int(c.t_peak[i]) if c.t_peak[i] >= 0 else None, norm_peak=finite_or_none(c.norm_peak[i])))
    out += [dict(p=c.p, lr=c.lr, wd=c.wd, frac=c.frac, arm=arm, rho=rho, group=c.group, seed=i,
                 t_grok=float(t), grokked=not k, censored=bool(k), diverged=False,
                 norm_at_grok=finite_or_none(c.norm_at_grok[i]), **extra(i))
            for i, (t, k) in enumerate(zip(c.t_grok, c.censored))]
  return out


# Which of their experiments replicate each claim of ours, first choice first (the same
# cells in other experiments of theirs are used where these have none). tfnoln_long is the
# one the paper's attention-model numbers come from.
EXPERIMENT_OF_CLAIM = {"dense_rho": ("denserho",), "moduli_scan": ("pscan",),
                       "norm_vs_lr": ("efflr",), "free_training": ("grokfss",),
                       "train_fraction": ("grokfss",), "wc_wd_lr": ("grokfss",),
                       "interventions": ("normint",),
                       "transformer_layernorm": ("tfnoln_long", "tfnoln", "tfnormint")}
OUR_ARMS = {"free": "free", "clamp": "clamp", "hold": "clamp", "oneshot": "oneshot", "kick": "kick"}


@dataclasses.dataclass(frozen=True)
class CellComparison:
  """One cell both sides ran: which, what was compared, and the comparison."""
  claim: str
  cell: str
  quantity: str  # "T_grok" or "W_c" (the norm at T_grok of free runs)
  ref_experiment: str
  comparison: object  # grokjax.analysis.compare.Comparison
  # (grokked at or after the floor, grokked) per side; None where that side has no floor
  # record (our folders trained before t_floor existed; their files without a train loss)
  floor_ours: tuple[int, int] | None = None
  floor_theirs: tuple[int, int] | None = None


def ours_after_floor(rows) -> tuple[int, int] | None:
  """(runs that grokked at or after their t_floor, runs that grokked) of our rows, None
  when the folder predates the t_floor column."""
  if not rows or "t_floor" not in rows[0]:
    return None
  g = [r for r in rows if r["grokked"]]
  return sum(1 for r in g if r.get("t_floor") is not None and r["t_grok"] >= r["t_floor"]), len(g)


def _our_key(row: dict, config: dict) -> tuple | None:
  arm = OUR_ARMS.get(row.get("arm"))
  if arm is None or row.get("scale") not in (None, 1, 1.0):  # a rescaled free run: not theirs
    return None
  rho = row.get("rho")
  group = row.get("group") if arm == "kick" else None
  if arm == "clamp" and row.get("norm_group") not in (None, "all"):
    arm, group = "clamp_group", row["norm_group"]  # one weight group held, as their tfnormint
  return (int(row["p"]), round(float(config.get("frac", 0.4)), 3), int(config.get("d", 128)),
          int(config.get("hidden", 256)), row.get("arch") or config.get("arch", "mlp"),
          round(float(row["wd"] if row.get("wd") is not None else config.get("wd", 1.0)), 6),
          round(float(row["lr"]), 8), arm,
          None if arm in ("free", "kick") or rho is None else round(float(rho), 3), group,
          bool(row.get("layernorm")))


def _describe(key: tuple) -> str:
  p, frac, d, h, arch, wd, lr, arm, rho, group, layernorm = key
  what = arm + (f" rho {rho:g}" if rho is not None else "") + (f" {group}" if group else "")
  model = "" if arch == "mlp" else f" ({arch}{', LayerNorm' if layernorm else ''})"
  return f"p={p} frac {frac:g} wd {wd:g} lr {lr:g} {what}{model}"


def _control_key(key: tuple) -> tuple:
  return key[:7] + ("free", None, None) + key[10:]


def _preferred(refs: list[RefCell], claim: str) -> RefCell:
  """The claim's own experiment's cell if it has one (first choice first), else the first."""
  for experiment in EXPERIMENT_OF_CLAIM.get(claim, ()):
    own = [c for c in refs if c.experiment == experiment]
    if own:
      return own[0]
  return refs[0]


def _grouped_rows(f) -> dict[tuple, list[dict]]:
  """A folder's rows by cell key (diverged runs left out)."""
  groups: dict[tuple, list[dict]] = {}
  for r in f.rows:
    if not r.get("diverged"):
      key = _our_key(r, f.config)
      if key is not None:
        groups.setdefault(key, []).append(r)
  return groups


def like_for_like(folders: dict, cells: list[RefCell], n_boot: int = 2000
                  ) -> list[CellComparison]:
  """Every cell of ours (`folders`: claim -> Folder or [Folder]) that the reference also ran,
  T_grok sample against sample (and W_c for free controls); the LayerNorm variants of ours
  are left out (their files name none)."""
  from grokjax.analysis import compare
  by_key: dict[tuple, list[RefCell]] = {}
  for c in cells:
    by_key.setdefault(c.key, []).append(c)
  out = []
  for claim, fs in folders.items():
    for f in (fs if isinstance(fs, list) else [fs]):
      groups = _grouped_rows(f)
      for key, rows in sorted(groups.items(), key=lambda kv: str(kv[0])):
        refs = by_key.get(key, [])
        if not refs:
          continue
        ref = _preferred(refs, claim)
        t = np.array([r["t_grok"] for r in rows], float)
        cens = np.array([not r["grokked"] for r in rows], bool)
        out.append(CellComparison(claim, _describe(key), "T_grok", ref.experiment,
                                  compare.compare_samples(t, cens, ref.t_grok, ref.censored,
                                                          n_boot),
                                  ours_after_floor(rows), ref.grokked_after_floor()))
        control_key = _control_key(key)
        if key[7] in ("oneshot", "kick", "clamp", "clamp_group") and control_key in groups \
            and control_key in by_key:
          # the arm's effect, seed by seed against the same seed's free control (both sides
          # match seeds across arms), so the two controls' own speeds cancel
          base = {r["seed"]: r for r in groups[control_key] if r["grokked"]}
          mine = [(r["t_grok"] / base[r["seed"]]["t_grok"], not r["grokked"]) for r in rows
                  if r["seed"] in base]
          rc = [c for c in by_key[control_key] if c.experiment == ref.experiment]
          if rc and len(rc[0].t_grok) == len(ref.t_grok) and mine:
            ok = ~rc[0].censored
            theirs_t = ref.t_grok[ok] / rc[0].t_grok[ok]
            a = np.array(mine)
            out.append(CellComparison(claim, _describe(key), "T_grok / own control", ref.experiment,
                                      compare.compare_samples(a[:, 0], a[:, 1].astype(bool),
                                                              theirs_t, ref.censored[ok], n_boot)))
        if key[7] == "free" and f.config.get("norm_group", "all") == "all":
          # (a folder measuring one weight group's norm has no total-norm W_c to compare)
          w = np.array([r["norm_at_grok"] for r in rows if r["grokked"]], float)
          rw = ref.norm_at_grok[~ref.censored]
          if len(w) > 1 and len(rw) > 1 and np.isfinite(rw).all():
            out.append(CellComparison(claim, _describe(key), "W_c", ref.experiment,
                                      compare.compare_samples(w, None, rw, None, n_boot)))
  return out


def delay_slopes(f, cells: list[RefCell], claim: str, n_boot: int = 1000) -> list[dict]:
  """The delay law's slope of one folder of ours and of the authors' cells, fitted by the
  same estimator (`grokjax.analysis.fit.fit_delay_law`, seeds as bootstrap clusters) over the held
  norms both ran, one entry per (modulus, lr, LayerNorm, clamped group) with at least two
  such norms: {cell, rhos, ours, theirs (fit dicts), experiment}."""
  from grokjax.analysis import fit
  groups = _grouped_rows(f)
  by_key: dict[tuple, list[RefCell]] = {}
  for c in cells:
    by_key.setdefault(c.key, []).append(c)
  laws: dict[tuple, dict[float, tuple]] = {}  # our key without rho -> rho -> (our rows, ref)
  for key, rows in groups.items():
    if key[7] in ("clamp", "clamp_group") and key in by_key:
      laws.setdefault(key[:8] + key[9:], {})[key[8]] = (rows, _preferred(by_key[key], claim))
  out = []
  for law, cells_at in sorted(laws.items(), key=lambda kv: str(kv[0])):
    experiment = max({ref.experiment for _, ref in cells_at.values()},
                     key=lambda e: sum(ref.experiment == e for _, ref in cells_at.values()))
    both = {rho: v for rho, v in cells_at.items() if v[1].experiment == experiment}
    if len(both) < 2:
      continue
    mine = [r for rows, _ in both.values() for r in rows]
    ours = fit.safe(fit.fit_delay_law, [r["rho"] for r in mine], [r["t_grok"] for r in mine],
                    [not r["grokked"] for r in mine], [r["seed"] for r in mine], n_boot=n_boot)
    refs = [(rho, ref) for rho, (_, ref) in both.items()]
    theirs = fit.safe(fit.fit_delay_law, np.concatenate([np.full(len(c.t_grok), rho)
                                                          for rho, c in refs]),
                      np.concatenate([c.t_grok for _, c in refs]),
                      np.concatenate([c.censored for _, c in refs]),
                      np.concatenate([np.arange(len(c.t_grok)) for _, c in refs]), n_boot=n_boot)
    out.append(dict(cell=_describe(law[:8] + (None,) + law[8:]), rhos=sorted(both), ours=ours,
                    theirs=theirs, experiment=experiment))
  return out
