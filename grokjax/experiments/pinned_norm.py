"""The pinned-norm experiment: per modulus a free control (W_c), then clamp cells at
rho * W_c from t_int on; the delay law ln T_grok = c + alpha * rho per modulus and shared.
With --scan, every value of one per-run hyperparameter in the same programs: W_c per value,
each value's clamp cells held at rho times its own W_c, the law per value.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from grokjax.harness import config, flags, io
from grokjax.experiments import registry
from grokjax.harness.estimate import Cell, eta_update, plan
from grokjax.harness.grids import (clamp_runs, free_phase, free_runs, load_wc, phase_rows, rows_at,
                                   scanned, wc_source_mismatch, write_tables)
from grokjax.harness.session import Session, say
from grokjax.analysis.stats import cell_summary, critical_norm, seed_cv
from grokjax.harness.summaries import checked_wc, delay_fits, grok_rule, print_delay_summary
from grokjax.engine.spec import WEIGHT_GROUPS, Runs


PRESETS = {
    "paper": dict(config.PAPER, moduli=[41, 53, 59, 71], seeds=12, lrs=[1e-3],
                  rhos=[0.85, 1.00, 1.15]),
    "quick": dict(config.QUICK, moduli=[41, 47], seeds=6, lrs=[1e-2],
                  rhos=[1.00, 1.05, 1.10, 1.15]),
    "smoke": dict(config.SMOKE, moduli=[23], seeds=2, lrs=[3e-2], rhos=[0.95, 1.10]),
}


def cells(cfg) -> list[Cell]:
  """Per modulus its free control (unless --wc-from gives its W_c) and its clamp cells."""
  given = load_wc(cfg.wc_from) if cfg.wc_from else {}
  n = cfg.seeds * len(_values(cfg))
  out = []
  for p in cfg.moduli:
    if p not in given:
      out.append(Cell(p, n, cfg.budget(None, p), f"free_p{p}"))
    out += [Cell(p, n, cfg.budget(r, p), f"clamp_p{p}", rho=r) for r in cfg.rhos]
  return out


def _values(cfg) -> list[float | None]:
  """The --scan's values, or [None] without one."""
  return cfg.scan_values or [None]


def _of(cfg, rows, value: float | None) -> list[dict]:
  """The rows trained at a --scan value (every row for None)."""
  return rows if value is None else rows_at(rows, cfg.scan_axis, value)


def add_flags(ap) -> None:
  flags.clamp_flags(ap)
  flags.arch_flags(ap)
  ap.add_argument("--norm-group", choices=list(WEIGHT_GROUPS),
                  help="the weight group whose norm W_c measures and the clamp holds (default "
                       "all: the total norm; output: the unembedding)")
  ap.add_argument("--wc-from", help="reuse W_c from a free_training or pinned_norm folder")
  ap.add_argument("--fit-rhos", type=flags.rho_range, metavar="LO:HI",
                  help="fit the delay law over these held norms only (the headline of fit.json "
                       "and the figure; the fit over every cell is kept as all_cells); a "
                       "finished folder refits without training")
  ap.add_argument("--pad-moduli", choices=["auto", "on", "off"], default="auto",
                  help="train every modulus in one program, padded to the largest (same "
                       "results to float32 rounding; auto: on for GPUs and TPUs, off on a CPU)")
  flags.scan_flag(ap, "W_c per value from its own free runs, each value's clamp cells held "
                      "at rho times that W_c, the delay law per value")


def check(cfg) -> None:
  if cfg.scan and cfg.wc_from:
    raise flags.UsageError("--wc-from: a --scan measures W_c at each of its values from its "
                           "own free runs; leave --wc-from out")
  flags.check_scan(cfg)
  if cfg.wc_from and not os.path.isdir(cfg.wc_from):
    raise flags.UsageError(f"--wc-from: {cfg.wc_from!r} is not a folder")
  if cfg.wc_from:
    try:
      mismatch = wc_source_mismatch(cfg, cfg.wc_from)
      load_wc(cfg.wc_from)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
      raise flags.UsageError(f"--wc-from: no W_c to read in {cfg.wc_from} "
                             f"({' '.join(str(e).split()) or type(e).__name__})") from None
    if mismatch:
      raise flags.UsageError(f"--wc-from: {mismatch}; its W_c is not this configuration's")
  flags.one_lr(cfg, "pinned_norm")
  flags.some_rhos(cfg)
  if cfg.fit_rhos and not any(cfg.fit_rhos[0] - 1e-9 <= r <= cfg.fit_rhos[1] + 1e-9
                              for r in cfg.rhos):
    raise flags.UsageError(f"--fit-rhos: {cfg.fit_rhos[0]:g}:{cfg.fit_rhos[1]:g} holds none of "
                           f"the held norms {', '.join(f'{r:g}' for r in cfg.rhos)}")
  flags.known_group(cfg)



def pinned_norm(sess: Session) -> dict[str, Any]:
  """Free control (W_c) then clamp cells per modulus; delay-law fits per modulus and shared."""
  cfg = sess.cfg
  if len(cfg.lrs) != 1:
    raise ValueError("pinned_norm holds one learning rate; use norm_vs_lr for several")
  lr = cfg.lrs[0]
  wc_given = load_wc(cfg.wc_from) if cfg.wc_from else {}
  grid = cells(cfg)
  sess.estimate = plan(cfg, grid)
  phases: list = []
  if pad_moduli(sess):
    per_v, clamp_rows = _padded(sess, lr, wc_given, phases)
  else:
    per_v, clamp_rows = _one_by_one(sess, lr, wc_given, grid, phases)
  all_rows = write_tables(sess, phases)
  result = _result(cfg, lr, per_v, clamp_rows, all_rows)
  io.write_json(sess.path("fit.json"), result)
  sess.draw(figures)
  if cfg.scan:
    for v, law in result["scan"]["per_value"].items():
      say(f"{cfg.scan_axis} {v}:")
      print_delay_summary(law)
  else:
    print_delay_summary(result)
  return result


def _result(cfg, lr, per_v, clamp_rows, all_rows) -> dict[str, Any]:
  """fit.json from per_v ({scan value or None: {p: W_c and cells}}): the law of the one
  value, or with --scan the headline value's (`Config.scan_home`) and under `scan` every
  value's."""
  if not cfg.scan:
    return _law(cfg, lr, per_v[None], clamp_rows, all_rows)
  per_value = {f"{v:g}": _law(cfg, lr, per_v[v], _of(cfg, clamp_rows, v), _of(cfg, all_rows, v))
               for v in cfg.scan_values}
  home = f"{cfg.scan_home:g}"
  return {**per_value[home], **grok_rule(cfg, all_rows),
          "scan": dict(axis=cfg.scan_axis, home=home, per_value=per_value)}


def _law(cfg, lr, per_p, clamp_rows, all_rows) -> dict[str, Any]:
  """Per modulus W_c, cells and the delay law (over --fit-rhos when given, the fit over
  every cell then kept as all_cells); the shared law likewise."""
  lo, hi = cfg.fit_rhos or (float("-inf"), float("inf"))
  fits = delay_fits(cfg, [r for r in clamp_rows if lo - 1e-9 <= r["rho"] <= hi + 1e-9])
  fits["shared"]["n_diverged"] = sum(1 for r in clamp_rows if r["diverged"])
  every = delay_fits(cfg, clamp_rows) if cfg.fit_rhos else None
  for p in cfg.moduli:
    per_p[p].update(fits["per_modulus"].get(p, {}))
    if every:
      per_p[p]["all_cells"] = every["per_modulus"].get(p, {})
  if every:
    fits["shared"]["all_cells"] = every["shared"]
  return dict(experiment="pinned_norm", lr=lr, fit_rhos=cfg.fit_rhos, per_modulus=per_p,
              shared=fits["shared"], fit_method=fits["method"], **grok_rule(cfg, all_rows),
              clamp_clock=fits["clamp_clock"], shape=fits["shape"],
              cells_not_clamped=fits["cells_not_clamped"])


def refit(folder: str, fit_rhos: list[float] | None) -> dict[str, Any]:
  """Rewrite a finished folder's fit.json and delay-law figure from its runs.csv, fitted
  over `fit_rhos` ([lo, hi]; None: every cell), without training; config.json records it."""
  import dataclasses as dc
  from grokjax.harness.config import Config
  saved = io.read_json(os.path.join(folder, "config.json"))
  names = {f.name for f in dc.fields(Config)}
  cfg = Config(**{**{k: v for k, v in saved["config"].items() if k in names},
                  "fit_rhos": fit_rhos})
  rows = io.read_runs(os.path.join(folder, "runs.csv"))
  clamp_rows = [r for r in rows if r["arm"] == "clamp"]
  per_v = {}
  for v in _values(cfg):
    per_v[v] = {}
    for p in cfg.moduli:
      free = [r for r in _of(cfg, rows, v) if r["arm"] == "free" and r["p"] == p]
      clamp = [r for r in _of(cfg, clamp_rows, v) if r["p"] == p]
      wc = critical_norm(free) if free else (clamp[0].get("wc") if clamp else None)
      per_v[v][p] = dict(wc=wc, cells=_cells(cfg, p, clamp))
  result = _result(cfg, cfg.lrs[0], per_v, clamp_rows, rows)
  io.write_json(os.path.join(folder, "fit.json"), result)
  saved["config"]["fit_rhos"] = fit_rhos
  io.write_json(os.path.join(folder, "config.json"), saved)
  figures(folder)
  return result


def pad_moduli(sess: Session) -> bool:
  """Whether this session trains every modulus in one padded program (`Task.sizes`):
  --pad-moduli on, or auto on an accelerator (on a CPU, where runs go one by one, the
  padding would only add work); the MLP on a modular problem, two moduli or more."""
  cfg, mode = sess.cfg, sess.pad_moduli
  if mode is False or len(cfg.moduli) < 2:
    return False
  if mode == "auto":
    import jax
    if jax.default_backend() == "cpu":
      return False
  try:
    dataclasses.replace(cfg.task(max(cfg.moduli)), sizes=tuple(cfg.moduli))
  except ValueError as e:
    if mode is True:
      raise ValueError(f"--pad-moduli: {e}")
    return False
  return True


def _free_wc(cfg, p, free) -> dict[float | None, float]:
  """W_c of p's free control at every --scan value (None: the one without a scan)."""
  out = {}
  for v in _values(cfg):
    rs = _of(cfg, free, v)
    what = "" if v is None else f" {cfg.scan_axis} {v:g}"
    wc = out[v] = checked_wc(cfg, p, rs, what)
    s = cell_summary(rs)
    say(f"p={p}{what}: free control W_c = {wc:.2f} (CV {seed_cv(rs):.1%}, "
        f"{s['grok_fraction']:.0%} grokked, median T_grok {s['median_t_grok']})")
  return out


def _cells(cfg, p, rows) -> dict[str, Any]:
  return {f"{rho:g}": cell_summary([r for r in rows if r["rho"] == rho]) for rho in cfg.rhos}


def _clamp_runs(cfg, p, wc: dict[float | None, float], lr) -> tuple[Runs, list, list]:
  """p's clamp runs at every (scan value, rho, seed), each held at rho times its value's
  W_c; with each run's rho and W_c."""
  parts, rho, wcs = [], [], []
  for v, w in wc.items():
    runs, r = clamp_runs(cfg, p, {float(lr): w}, cfg.rhos, [lr])
    parts.append(runs if v is None else dataclasses.replace(runs, **{cfg.scan_axis: v}))
    rho += list(r)
    wcs += [w] * len(r)
  return (parts[0] if len(parts) == 1 else Runs.concat(*parts)), rho, wcs


def _per_value(cfg, p, wc, rows) -> dict[float | None, dict[str, Any]]:
  return {v: dict(wc=wc[v], cells=_cells(cfg, p, _of(cfg, rows, v))) for v in _values(cfg)}


def _given(cfg, wc_given, p) -> dict[None, float]:
  say(f"p={p}: W_c = {wc_given[p]:.2f} from {cfg.wc_from}")
  return {None: wc_given[p]}


def _one_by_one(sess, lr, wc_given, grid, phases):
  """Per modulus: its free control, then its clamp cells (one program per modulus)."""
  cfg = sess.cfg
  per_p, clamp_rows = {}, []
  for i, p in enumerate(cfg.moduli):
    if p in wc_given:
      wc = _given(cfg, wc_given, p)
    else:
      free = free_phase(sess, p, [lr], phases)
      wc = _free_wc(cfg, p, free)
      later = [c for c in grid if c.p in cfg.moduli[i + 1:]]
      eta_update(sess, p, free, [c for c in grid if c.phase == f"clamp_p{p}"] + later)
    runs, rho, wcs = _clamp_runs(cfg, p, wc, lr)
    rows = phase_rows(sess, f"clamp_p{p}", cfg.task(p), runs, ["clamp"] * len(runs), rho, phases)
    for r, w in zip(rows, wcs):
      r["wc"] = w
    clamp_rows += rows
    per_p[p] = _per_value(cfg, p, wc, rows)
  return _by_value(cfg, per_p), clamp_rows


def _by_value(cfg, per_p) -> dict[float | None, dict[int, Any]]:
  """{p: {value: cell}} -> {value: {p: cell}}."""
  return {v: {p: per_p[p][v] for p in cfg.moduli} for v in _values(cfg)}


def _padded(sess, lr, wc_given, phases):
  """Every modulus in one padded program: all free controls as one batch, then all clamp
  cells as another (two compiled calls for the whole grid)."""
  cfg = sess.cfg
  task = dataclasses.replace(cfg.task(max(cfg.moduli)), sizes=tuple(cfg.moduli))
  tag = "-".join(map(str, cfg.moduli))
  wc = {p: _given(cfg, wc_given, p) for p in cfg.moduli if p in wc_given}
  todo = [p for p in cfg.moduli if p not in wc_given]
  if todo:
    runs = Runs.concat(*[dataclasses.replace(scanned(cfg, free_runs(cfg, p, [lr])), size=p)
                         for p in todo])
    rows = phase_rows(sess, f"free_p{tag}", task, runs, ["free"] * len(runs),
                      [None] * len(runs), phases)
    for p in todo:
      wc[p] = _free_wc(cfg, p, [r for r in rows if r["p"] == p])
  parts = [_clamp_runs(cfg, p, wc[p], lr) for p in cfg.moduli]
  runs = Runs.concat(*[dataclasses.replace(r, size=p) for p, (r, _, _) in zip(cfg.moduli, parts)])
  rho = [x for _, rhos, _ in parts for x in rhos]
  rows = phase_rows(sess, f"clamp_p{tag}", task, runs, ["clamp"] * len(runs), rho, phases)
  for r, w in zip(rows, [w for _, _, wcs in parts for w in wcs]):
    r["wc"] = w
  per_p = {p: _per_value(cfg, p, wc[p], [r for r in rows if r["p"] == p]) for p in cfg.moduli}
  return _by_value(cfg, per_p), rows


def figures(folder: str) -> list[str]:
  """A finished folder's figures from its files: the delay law (runs.csv, fit.json; a
  --scan's headline value, and a panel per value in delay_law_by_AXIS.png) and, where
  curves.npz is there, the curves."""
  from grokjax.harness import plots
  from grokjax.harness.results import load
  res = load(folder, curves=False)
  clamp = [r for r in res.runs if r["arm"] == "clamp"]
  scan, by_value = res.fit.get("scan"), []
  if scan:
    at = lambda v: rows_at(clamp, scan["axis"], float(v))
    by_value = [plots.delay_law_scan(
        os.path.join(folder, "figures", f"delay_law_by_{scan['axis']}.png"), scan["axis"],
        {v: (at(v), law) for v, law in scan["per_value"].items()})]
    clamp = at(scan["home"])
  clocks = [plots.delay_law(os.path.join(folder, "figures", "delay_law_clamp_clock.png"),
                            clamp, res.fit, clock="clamp")] if res.fit.get("clamp_clock") else []
  return [plots.delay_law(os.path.join(folder, "figures", "delay_law.png"), clamp, res.fit),
          *clocks, *by_value, *plots.curves_of(res)]


EXPERIMENT = registry.Experiment(
    name="pinned_norm", run=pinned_norm, presets=PRESETS, cells=cells, add_flags=add_flags,
    check=check, figures=figures, output="fit.json", doc=__doc__)
