"""Precision: the same seeds and held norms trained under several arithmetics (arms), to
tell a property of the dynamics from one of float32. Per cell and arm the median T_grok
with its CI, the floor step t_floor, and the seed-paired ratio to the reference arm (the
first) with a Wilcoxon signed-rank test.

An arm is `DTYPE[+LOSS][+noiseK]`: DTYPE float32, float64 or bfloat16 (float32 weights,
bfloat16 matmuls, trained only where the backend honours them); LOSS one of
`grokjax.engine.losses.LOSSES` (default the framework cross-entropy); noiseK the parameter
noise amplitude k (`Runs.noise`). Arms that share a dtype and a loss train in one program
(a noise sweep is one compiled grid).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from grokjax.analysis.compare import paired_ratio
from grokjax.analysis.stats import (cell_summary, censored_median, median_or_none, seed_bootstrap,
                                    usable)
from grokjax.engine.losses import LOSSES
from grokjax.engine.spec import Runs
from grokjax.harness import config, flags, io
from grokjax.experiments import registry
from grokjax.harness.estimate import Cell, plan
from grokjax.harness.grids import clamp_runs, free_phase, load_wc, phase_rows, write_tables
from grokjax.harness.session import Session, say
from grokjax.harness.summaries import checked_wc, grok_rule

ALL_ARMS = ["float32", "float64", "float32+exact", "float64+float32_floor",
            "float64+noise1", "float64+noise10", "float64+noise100", "bfloat16"]

PRESETS = {
    "paper": dict(config.PAPER, moduli=[59], seeds=8, lrs=[1e-3], rhos=[0.85, 1.00, 1.15],
                  arms=ALL_ARMS),
    "quick": dict(config.QUICK, moduli=[41], seeds=6, lrs=[1e-2], rhos=[1.00, 1.15],
                  arms=ALL_ARMS),
    "smoke": dict(config.SMOKE, moduli=[23], seeds=2, lrs=[3e-2], rhos=[1.10],
                  arms=["float32", "float64", "float32+exact", "float64+float32_floor",
                        "float64+noise10"]),
}


class Arm(NamedTuple):
  """One arithmetic: the Task fields it sets and its runs' noise amplitude."""
  name: str
  dtype: str
  loss: str
  noise: float
  matmul_precision: str

  @property
  def program(self) -> tuple:
    """What its program depends on: arms equal here train in one phase."""
    return (self.dtype, self.loss, self.matmul_precision, self.noise > 0)


def parse_arm(text: str) -> Arm:
  """"float64+float32_floor+noise10" -> Arm; ValueError naming what is wrong."""
  head, *rest = [t.strip() for t in text.split("+")]
  if head not in ("float32", "float64", "bfloat16"):
    raise ValueError(f"arm {text!r}: starts with float32, float64 or bfloat16, not {head!r}")
  loss, noise = "cross_entropy", 0.0
  for token in rest:
    if token in LOSSES:
      loss = token
    elif token.startswith("noise"):
      try:
        noise = float(token[len("noise"):])
      except ValueError:
        noise = -1.0
      if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"arm {text!r}: {token!r} is not noise<k> with k >= 0")
    else:
      raise ValueError(f"arm {text!r}: {token!r} is neither a loss ({', '.join(LOSSES)}) "
                       "nor noise<k>")
  dtype = "float32" if head == "bfloat16" else head
  return Arm(text, dtype, loss, noise, "bfloat16" if head == "bfloat16" else "float32")


def arms(cfg) -> list[Arm]:
  return [parse_arm(a) for a in cfg.arms or ["float32"]]


def cells(cfg) -> list[Cell]:
  """Per modulus a float32 free control (unless --wc-from gives W_c), then per arm and
  held norm one cell of seeds."""
  given = load_wc(cfg.wc_from) if cfg.wc_from else {}
  out = []
  for p in cfg.moduli:
    if p not in given:
      out.append(Cell(p, cfg.seeds, cfg.budget(None, p), f"free_p{p}"))
    out += [Cell(p, cfg.seeds, cfg.budget(r, p), f"{_phase(p, a)}", rho=r, dtype=a.dtype)
            for a in arms(cfg) for r in cfg.rhos]
  return out


def _phase(p: int, arm: Arm) -> str:
  dtype, loss, matmul, noisy = arm.program
  return "_".join([f"clamp_p{p}", "bfloat16" if matmul == "bfloat16" else dtype]
                  + ([loss] if loss != "cross_entropy" else []) + (["noise"] if noisy else []))


def add_flags(ap) -> None:
  flags.clamp_flags(ap)
  flags.arch_flags(ap)
  ap.add_argument("--arms", type=flags.list_of("--arms", lambda s: parse_arm(s).name,
                                               "arms like float32,float64+float32_floor,"
                                               "float64+noise10"),
                  help="the arithmetics, the first the reference of the paired ratios "
                       f"(default: {','.join(ALL_ARMS)})")
  ap.add_argument("--wc-from", help="hold the norms at this float32 folder's W_c "
                                    "(free_training or pinned_norm)")


def check(cfg) -> None:
  from grokjax.experiments import pinned_norm
  pinned_norm.check(cfg)  # --wc-from, one lr, some rhos
  if (cfg.dtype != "float32" or cfg.loss != "cross_entropy" or cfg.noise
      or cfg.matmul_precision != "float32"):
    raise flags.UsageError("--dtype/--loss/--noise/--matmul-precision: the precision "
                           "experiment sets them per arm; name the arms with --arms")


def honours_bfloat16() -> bool:
  """Whether this backend computes a float32 matmul differently under
  default_matmul_precision("bfloat16") (the CPU ignores it: identical bits)."""
  import jax
  import jax.numpy as jnp
  a = jax.random.normal(jax.random.key(0), (64, 64), jnp.float32)
  plain = jax.jit(lambda x: x @ x)(a)
  with jax.default_matmul_precision("bfloat16"):
    low = jax.jit(lambda x: x @ x + 0)(a)
  return bool(jnp.any(plain != low))


def precision(sess: Session) -> dict[str, Any]:
  """Every arm at the same seeds and held norms; per cell the arms side by side."""
  cfg = sess.cfg
  lr = cfg.lrs[0]
  wc_given = load_wc(cfg.wc_from) if cfg.wc_from else {}
  all_arms = arms(cfg)
  skipped = {}
  if any(a.matmul_precision == "bfloat16" for a in all_arms) and not honours_bfloat16():
    import jax
    skipped = {a.name: f"the {jax.default_backend()} backend ignores bfloat16 matmul precision "
                       "(a probe matmul gave float32's bits): the arm would be float32"
               for a in all_arms if a.matmul_precision == "bfloat16"}
    for name, why in skipped.items():
      say(f"arm {name}: not trained, {why}")
  todo = [a for a in all_arms if a.name not in skipped]
  sess.estimate = plan(cfg, [c for c in cells(cfg) if not any(
      c.phase == _phase(c.p, a) for a in all_arms if a.name in skipped)])
  phases, rows = [], []
  wc = {}
  for p in cfg.moduli:
    if p in wc_given:
      wc[p] = wc_given[p]
      say(f"p={p}: W_c = {wc[p]:.2f} from {cfg.wc_from}")
    else:
      free = free_phase(sess, p, [lr], phases)
      wc[p] = checked_wc(cfg, p, free)
      say(f"p={p}: float32 free control W_c = {wc[p]:.2f}")
    base, rho = clamp_runs(cfg, p, {float(lr): wc[p]}, cfg.rhos, [lr])
    for key in dict.fromkeys(a.program for a in todo):
      group = [a for a in todo if a.program == key]
      runs = Runs.concat(*[dataclasses.replace(base, noise=np.full(len(base), a.noise))
                           for a in group])
      task = dataclasses.replace(cfg.task(p), dtype=group[0].dtype, loss=group[0].loss,
                                 matmul_precision=group[0].matmul_precision,
                                 noise=group[0].noise > 0)
      names = [a.name for a in group for _ in range(len(base))]
      got = phase_rows(sess, _phase(p, group[0]), task, runs, ["clamp"] * len(runs),
                       list(rho) * len(group), phases,
                       per_run=[dict(precision_arm=n, dtype=task.dtype, loss=task.loss,
                                     noise=a_noise)
                                for n, a_noise in zip(names, runs.noise)])
      for r in got:
        r["wc"] = wc[p]
      rows += got
  all_rows = write_tables(sess, phases)
  result = dict(experiment="precision", lr=lr, reference_arm=todo[0].name if todo else None,
                arms=[a.name for a in todo], skipped_arms=skipped,
                wc={str(p): w for p, w in wc.items()},
                cells=summarise(rows, [a.name for a in todo], cfg.n_boot),
                **grok_rule(cfg, all_rows))
  io.write_json(sess.path("summary.json"), result)
  sess.draw(figures)
  print_summary(result)
  return result


def summarise(rows, arm_names: list[str], n_boot: int = 1000) -> list[dict[str, Any]]:
  """Per (p, rho) and arm: its cell summary, median T_grok with a seed-bootstrap CI,
  the floor steps, and the seed-paired comparison with the reference (first) arm."""
  out = []
  for p in sorted({r["p"] for r in rows}):
    for rho in sorted({r["rho"] for r in rows if r["p"] == p}):
      cell = [r for r in rows if r["p"] == p and r["rho"] == rho]
      by_arm = {a: [r for r in cell if r["precision_arm"] == a] for a in arm_names}
      ref = by_arm[arm_names[0]] if arm_names else []
      for a in arm_names:
        mine = by_arm[a]
        s = cell_summary(mine)
        med, ci = seed_bootstrap(mine, _median_t, n_boot)
        floors = [r["t_floor"] for r in mine if r.get("t_floor") is not None]
        floors32 = [r["t_floor_f32"] for r in mine if r.get("t_floor_f32") is not None]
        out.append(dict(p=p, rho=rho, arm=a, **s, median_t_grok_ci=ci,
                        n_floor=len(floors), median_t_floor=median_or_none(floors),
                        n_floor_f32=len(floors32), median_t_floor_f32=median_or_none(floors32),
                        grokked_after_floor=sum(1 for r in mine if r["grokked"]
                                                and r.get("t_floor") is not None
                                                and r["t_floor"] <= r["t_grok"]),
                        **({} if a == arm_names[0] else {"vs_reference": paired_ratio(ref, mine)})))
  return out


def _median_t(rows) -> float | None:
  ok = usable(rows)
  return censored_median([r["t_grok"] for r in ok], [r["censored"] for r in ok])


def print_summary(result) -> None:
  for c in result["cells"]:
    ci = c["median_t_grok_ci"]
    vs = c.get("vs_reference")
    tail = ""
    if vs:
      mr = vs["median_ratio"]
      tail = (f"  x{mr:.2f} vs {result['reference_arm']}" if mr is not None else
              f"  ratio unknown vs {result['reference_arm']}")
      tail += f" (Wilcoxon p {vs['wilcoxon_p']:.3g})" if vs["wilcoxon_p"] is not None else ""
    say(f"p={c['p']} rho {c['rho']:g} {c['arm']:>24}: {c['grok_fraction']:.0%} grokked, "
        f"median T_grok {c['median_t_grok']}"
        + (f" [{ci[0]:.0f}, {ci[1]:.0f}]" if ci else "")
        + f", floor in {c['n_floor']}/{c['n']} (median t_floor {c['median_t_floor']}){tail}")


def figures(folder: str) -> list[str]:
  """figures/precision.png, where curves.npz is there: per clamp cell (a row), test
  accuracy and the fraction of train examples at the floor against the step, one colour
  per arm, one line per seed."""
  import os
  from grokjax.harness import plots
  from grokjax.harness.results import load
  if not os.path.exists(os.path.join(folder, "curves.npz")):
    return []
  res = load(folder)
  clamp = [i for i, r in enumerate(res.runs) if r["arm"] == "clamp"]
  cells = sorted({(res.runs[i]["p"], res.runs[i]["rho"]) for i in clamp})
  names = list(dict.fromkeys(res.runs[i]["precision_arm"] for i in clamp))
  fig, axes = plots.plt.subplots(len(cells), 2, figsize=(10, 3.2 * len(cells)), squeeze=False)
  for row, (p, rho) in enumerate(cells):
    for i in clamp:
      r = res.runs[i]
      if (r["p"], r["rho"]) != (p, rho):
        continue
      colour = f"C{names.index(r['precision_arm'])}"
      for col, curve in enumerate(("test_acc", "floor")):
        steps, values = res.curve(i, curve) if curve in res.curves else ([], [])
        axes[row, col].plot(steps, values, color=colour, lw=0.7, alpha=0.7)
    for col, what in enumerate(("test accuracy", "train examples at the floor")):
      ax = axes[row, col]
      ax.set_title(f"p={p}, rho {rho:g}: {what}", fontsize=9)
      ax.set_xlabel("step")
  for k, name in enumerate(names):
    axes[0, 0].plot([], [], color=f"C{k}", label=name)
  axes[0, 0].legend(fontsize=7)
  return [plots.save(fig, os.path.join(folder, "figures", "precision.png"))]


EXPERIMENT = registry.Experiment(
    name="precision", run=precision, presets=PRESETS, cells=cells, add_flags=add_flags,
    check=check, figures=figures, output="summary.json", doc=__doc__)
