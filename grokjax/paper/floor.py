"""The report's section on the float32 floor: every committed precision folder (under
`precision/` of the results) as one table, its cells and arithmetic arms side by side."""

from __future__ import annotations

import os

from grokjax.harness import io
from grokjax.paper.table import fmt_ci, num


def folder_lines(path: str, rel=None) -> list[str]:
  """One precision folder's table: per cell and arm the grok fraction, the median T_grok
  with its CI, the floor step, and the seed-paired ratio to the reference arm."""
  s = io.read_json(os.path.join(path, "summary.json"))
  cfg = io.read_json(os.path.join(path, "config.json"))
  env = cfg.get("environment", {})
  lines = [f"`{os.path.basename(path)}` (reference arm {s['reference_arm']}; W_c "
           + ", ".join(f"{w:.2f} at p={p}" for p, w in s["wc"].items())
           + f"; {env.get('cpu', '?')}, jax {env.get('jax', '?')})", ""]
  if s.get("skipped_arms"):
    lines += ["Not trained: " + "; ".join(f"{a}: {why}" for a, why in s["skipped_arms"].items()), ""]
  lines += ["| p | rho | arm | grokked | median T_grok [95 % CI] | at the floor (median t_floor) "
            "| ratio to the reference (median, seed-paired) | Wilcoxon p |",
            "|---|---|---|---|---|---|---|---|"]
  for c in s["cells"]:
    vs = c.get("vs_reference") or {}
    ratio = "-"
    if vs:
      ratio = ("undefined" if vs["median_ratio"] is None else num(vs["median_ratio"]))
      bounds = vs["n_ratio_lower_bound"]
      if bounds:
        ratio += f" ({bounds} of {vs['n_pairs']} lower bounds)"
    med = "censored (> budget)" if c["median_t_grok"] is None else fmt_ci(c["median_t_grok"],
                                                                        c["median_t_grok_ci"])
    grokked = round(c["grok_fraction"] * (c["n"] - c["n_diverged"]))
    p_value = vs.get("wilcoxon_p")
    lines.append(f"| {c['p']} | {c['rho']:g} | {c['arm']} | {grokked}/{c['n']} | {med} | "
                 f"{c['n_floor']}/{c['n']} ({num(c['median_t_floor'])}) | {ratio} | "
                 f"{'-' if p_value is None else f'{p_value:.2g}'} |")
  figure = os.path.join(path, "figures", "precision.png")
  if rel is not None and os.path.exists(figure):
    lines += ["", f"![{os.path.basename(path)}]({rel(figure)})"]
  return lines


def section(results: str, rel=None) -> list[str]:
  """The markdown lines of the section (none without a precision folder)."""
  root = os.path.join(results, "precision")
  folders = sorted(os.path.join(root, n) for n in os.listdir(root)) if os.path.isdir(root) else []
  folders = [f for f in folders if os.path.exists(os.path.join(f, "summary.json"))]
  if not folders:
    return []
  lines = ["## The float32 floor: the same seeds under other arithmetic", "",
           "Each folder trains the same seeds and held norms under several arithmetics "
           "(`python experiments/precision.py`): float32 and float64, the exact-gradient loss "
           "(no floor in any dtype), float32's floor applied on purpose in float64. A run is at "
           "its floor (t_floor) from the first evaluation at which half its train examples "
           "have a correct-class gradient of exactly 0. Ratios pair each seed with itself under "
           "the reference arm; a censored run enters at its budget (a lower bound).", ""]
  for f in folders:
    lines += folder_lines(f, rel) + [""]
  notes = os.path.join(root, "README.md")
  if os.path.exists(notes):
    lines += [open(notes, encoding="utf-8").read().rstrip(), ""]
  return lines
