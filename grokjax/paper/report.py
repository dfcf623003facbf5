"""The whole table: every claim's rows from the results folders, as text or markdown
(docs/reproduction.md), with the like-for-like comparisons when the authors' data is read.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from grokjax.harness import io
from grokjax.paper import attention, free_delay, mlp_claims, prediction
from grokjax.paper.claims import CLAIMS
from grokjax.paper.table import Folder, MissingResults, Row, fmt_ci, num

# The rows of a claim read from its one folder: the claim's name -> its function here.
ONE_FOLDER_ROWS = {"moduli_scan": mlp_claims.moduli_scan_rows,
                   "norm_vs_lr": mlp_claims.norm_vs_lr_rows,
                   "free_training": mlp_claims.free_training_rows,
                   "free_norm_delay": free_delay.free_norm_delay_rows}


def report(results: str, n_boot: int = 1000, only: Sequence[str] | None = None,
           reference: list | None = None) -> tuple[list[Row], dict[str, Folder | list[Folder]]]:
  """Every row that the results under `results` support; raises MissingResults naming
  the first absent folder among the claims asked for when a claim has none of its folders.
  A claim of several folders with some absent gives the rows of those present and one "not
  measured" row per absent one; accelerator-only parts are read when present and skipped
  when not. reference: the authors' cells (`grokjax.paper.reference.load`), for the rows that
  compare a fit of ours with theirs over the same cells."""
  names = [n for n in CLAIMS if only is None or n in only]
  folders: dict[str, Any] = {}
  rows: list[Row] = []
  for name in names:
    parts = CLAIMS[name][1]
    there = lambda p: os.path.exists(os.path.join(results, p.folder, "runs.csv"))
    present = [p for p in parts if there(p)]
    if not present:
      present = [p for p in parts if not p.accelerator_only]  # the first one names the gap
    try:
      loaded = [Folder.load(os.path.join(results, p.folder)) for p in present]
    except MissingResults as e:
      raise MissingResults(str(e), claim=name) from None
    for p in parts:
      if p not in present and not p.accelerator_only:
        rows.append(Row(CLAIMS[name][0], f"folder {p.folder}", None, None, None, None,
                        "not measured", f"train it with: python experiments/reproduce.py "
                        f"--only {name}"))
    folders[name] = loaded if len(parts) > 1 else loaded[0]
    if name in ONE_FOLDER_ROWS:
      rows += ONE_FOLDER_ROWS[name](loaded[0], n_boot)
    elif name == "dense_rho":
      rows += mlp_claims.dense_rho_rows(loaded[0], n_boot, reference)
    elif name == "interventions":
      rows += mlp_claims.interventions_rows(loaded[0], n_boot, reference)
    elif name == "wc_wd_lr":
      rows += mlp_claims.wc_wd_lr_rows(loaded[0], n_boot, reference)
    elif name == "train_fraction":
      rows += mlp_claims.train_fraction_rows(loaded, n_boot)
    elif name == "transformer_layernorm":
      rows += attention.transformer_rows({p.folder.split("/")[-1]: f for p, f in zip(present, loaded)},
                               n_boot, reference)
    elif name == "user_moduli":
      scan_path = os.path.join(results, "moduli_scan")
      scan = Folder.load(scan_path) if os.path.exists(os.path.join(scan_path, "runs.csv")) else None
      pred_path = os.path.join(results, "user_moduli", "prediction.json")
      pred = io.read_json(pred_path) if os.path.exists(pred_path) else None
      rows += prediction.user_moduli_rows(loaded[0], scan, pred, n_boot)
  return rows, folders


def figures(results: str, folders: dict[str, Any]) -> list[str]:
  """The figures across a claim's folders, written under `results`: W_c against the train
  fraction (train_fraction) beside the paper's."""
  from grokjax.paper import numbers as paper
  from grokjax.harness import plots
  out = []
  if isinstance(folders.get("train_fraction"), list) and folders["train_fraction"]:
    per_frac = {float(f.config["frac"]): f.free() for f in folders["train_fraction"]}
    out.append(plots.wc_vs_frac(os.path.join(results, "train_fraction", "wc_vs_frac.png"),
                                per_frac, paper.TRAIN_FRACTION["wc"]))
  return out


def format_table(rows: Sequence[Row], markdown: bool = False) -> str:
  head = ("claim", "quantity", "paper", "ours [95 % CI]", "ours / paper", "verdict")
  body = []
  for r in rows:
    pv = r.paper if isinstance(r.paper, str) or r.paper is None else fmt_ci(r.paper, r.paper_ci)
    ov = r.ours if isinstance(r.ours, str) or r.ours is None else fmt_ci(r.ours, r.ours_ci)
    ratio, ratio_ci = r.ratio
    rv = "-" if ratio is None else fmt_ci(ratio, ratio_ci)
    v = r.verdict + (f" ({r.note})" if r.note else "")
    body.append((r.claim, r.quantity, pv or "-", ov or "-", rv, v))
  if markdown:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in b) + " |" for b in body]
    return "\n".join(lines)
  widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head) - 1)]
  fmt = lambda cols: "  ".join(str(c).ljust(w) for c, w in zip(cols, widths)) + "  " + str(cols[-1])
  return "\n".join([fmt(head)] + [fmt(b) for b in body])


def machine_line(env: dict) -> str:
  return (f"{env.get('cpu', env.get('device', '?'))}, {env.get('device_count', '?')} "
          f"{env.get('platform', '?')} device(s), jax {env.get('jax', '?')}")


def format_comparisons(comparisons, markdown: bool = False) -> str:
  """The like-for-like table: one row per cell and quantity both sides measured."""
  head = ("claim", "cell", "quantity", "ours: median (n, censored)",
          "authors: median (n, censored) [experiment]", "ours / authors [95 % CI]",
          "rank test p", "grokked after the floor: ours / authors", "verdict")
  body = []
  after = lambda x: "-" if x is None else f"{x[0]}/{x[1]}"
  for c in comparisons:
    k = c.comparison
    body.append((c.claim, c.cell, c.quantity, f"{num(k.ours_median)} ({k.n_ours}, {k.censored_ours})",
                 f"{num(k.ref_median)} ({k.n_ref}, {k.censored_ref}) [{c.ref_experiment}]",
                 "-" if k.ratio is None else fmt_ci(k.ratio, k.ratio_ci),
                 "-" if k.p_value is None else f"{k.p_value:.2g}",
                 after(c.floor_ours) + " / " + after(c.floor_theirs), k.verdict))
  counts: dict[str, int] = {}
  for b in body:
    counts[b[-1]] = counts.get(b[-1], 0) + 1
  tally = ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
  if markdown:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(x) for x in b) + " |" for b in body]
    return "\n".join(lines + ["", f"Verdicts: {tally}."])
  widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head) - 1)]
  fmt = lambda cols: "  ".join(str(x).ljust(w) for x, w in zip(cols, widths)) + "  " + str(cols[-1])
  return "\n".join([fmt(head)] + [fmt(b) for b in body] + [f"verdicts: {tally}"])


def seed_streams(folders: dict) -> dict[str, str]:
  """Each folder's seed stream ("" for folders written before streams: they share seeds)."""
  out = {}
  for name, f in folders.items():
    for one in (f if isinstance(f, list) else [f]):
      out[one.path] = one.config.get("seed_stream") or ""
  return out


def sections(results: str, folders: dict, cells, n_boot: int, doc: str = ".") -> list[str]:
  """The report's sections after the tables: the float32 floor (`grokjax.paper.floor`;
  figures linked relative to the report `doc`) and the law's clock and shape
  (`grokjax.paper.clock`)."""
  from grokjax.paper import clock, floor
  rel = lambda p: os.path.relpath(p, os.path.dirname(os.path.abspath(doc)))
  return floor.section(results, rel) + clock.section(results, folders, cells, n_boot)


LIKE_FOR_LIKE = "## Like for like: every cell against the authors' per-seed data"


def would_lose(doc: str, results: str, with_reference: bool) -> str | None:
  """Why writing the default report `doc` would lose something, or None: it holds the
  like-for-like tables that only --reference rebuilds, or was built from another --results
  folder (the folder it names)."""
  if not os.path.exists(doc):
    return None
  text = open(doc, encoding="utf-8", errors="replace").read()
  if LIKE_FOR_LIKE in text and not with_reference:
    return (f"{doc} holds the like-for-like tables against the authors' data, which only "
            "--reference DIR rebuilds")
  if os.path.normpath(results) != os.path.normpath(os.path.join("docs", "results")):
    return f"{doc} is the report of docs/results, and this one reads {results}"
  return None


def write_markdown(path: str, rows: Sequence[Row], folders: dict, missing: Sequence[str],
                   comparisons=None, sections: Sequence[str] = ()) -> None:
  """docs/reproduction.md: the table, machine and wall time per experiment, figures."""
  lines = ["# Reproduction of arXiv:2606.13753 with grokjax", "",
           "Generated by `python experiments/reproduce.py --report-only` from the runs.csv files "
           "under `docs/results/`; every number is recomputed from them. Verdicts and CIs: see "
           "`grokjax/paper/table.py`.", "", format_table(rows, markdown=True), ""]
  if missing:
    lines += ["Not yet measured: " + ", ".join(f"`{m}` ({CLAIMS[m][0]})" for m in missing), ""]
  rel = lambda p: os.path.relpath(p, os.path.dirname(os.path.abspath(path)))
  shared = [rel(p) for p, stream in seed_streams(folders).items() if not stream]
  if shared:
    lines += ["**Shared seeds.** These folders were trained before seed streams and draw seed "
              "indices 0..N-1 from one shared stream, so cells they have in common are the same "
              "runs, not independent replications: " + ", ".join(f"`{x}`" for x in shared)
              + ". Every other folder draws from its own stream.", ""]
  if comparisons:
    lines += [LIKE_FOR_LIKE, "",
              "Read with `--reference DIR` from a checkout of ClevixLab/critical-norm-grokking. "
              "Their T_grok is read on a logarithmic grid of about 360 points (2.5-3 % apart), "
              "ours every 10 steps; censored seeds count as later than every observed time on "
              "both sides (their own medians drop them). Verdict: `grokjax/analysis/compare.py`. "
              "Grokked after the floor: of the seeds that grokked, how many did so at or after "
              "their float32 floor step; ours: `t_floor` (half the train examples with a "
              "correct-class gradient of exactly 0; '-' for a folder trained before it was "
              "recorded), theirs: the first logged step with mean train loss <= 2^-22 "
              "(`grokjax.paper.reference.floor_steps`).", "",
              format_comparisons(comparisons, markdown=True), ""]
  lines += list(sections)
  lines += ["## Experiments", "", "| claim | folder | machine | training wall time |",
            "|---|---|---|---|"]
  figures = []
  for name, f in folders.items():
    for one in (f if isinstance(f, list) else [f]):
      wall = sum((one.timing.get("phases") or {}).values())
      lines.append(f"| {name} | `{rel(one.path)}` | {machine_line(one.environment)} | "
                   f"{wall / 60:.1f} min |")
      fig_dir = os.path.join(one.path, "figures")
      if os.path.isdir(fig_dir):
        figures += [os.path.join(fig_dir, x) for x in sorted(os.listdir(fig_dir))
                    if not x.startswith(".")]  # not the folder's own list of them
  notes = os.path.join(os.path.dirname(os.path.abspath(path)), "reproduction_notes.md")
  if os.path.exists(notes):  # the hand-written discussion of the rows that differ
    with open(notes) as fh:
      lines += ["", fh.read().rstrip()]
  lines += ["", "## Figures", ""] + [f"![{os.path.basename(x)}]({rel(x)})" for x in figures]
  io.atomic_bytes(path, ("\n".join(lines) + "\n").encode())

