"""Command-line front end shared by the experiment scripts.

Every flag is validated before any work starts or any folder is made; a bad value ends
the program with one line on stderr naming the flag, the value and what is allowed, and
exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Callable, Sequence

from grokjax import problems
from grokjax.harness import estimate, flags, io
from grokjax.experiments import registry
from grokjax.engine import runtime
from grokjax.harness.flags import (UNSET, UsageError, floats, integer, ints, margin,  # noqa: F401
                                   number_in)
from grokjax.harness.session import ConfigMismatch, Session, say
from grokjax.engine.spec import MATMUL_PRECISIONS


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # argparse's own errors, one line, exit 2
    raise UsageError(message)


def _problem(text: str) -> str:
  try:
    problems.parse_spec(text)
  except ValueError as e:
    raise UsageError(f"--problem: {e}")
  return text


def build_parser(experiment: str, doc: str = "") -> argparse.ArgumentParser:
  """The common flags, then the experiment's own (`add_flags` of its module)."""
  ap = _Parser(prog=f"{experiment}.py", description=doc,
               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--preset", default="paper",
                  help=f"base configuration, one of {', '.join(registry.get(experiment).presets)} "
                       "(default paper)")
  ap.add_argument("--moduli", type=ints("--moduli", 3),
                  help="comma-separated moduli p (sparse parity: input bits n)")
  ap.add_argument("--problem", type=_problem,
                  help=f"what is learnt: {', '.join(problems.names())}; options after a colon, "
                       "e.g. sparse_parity:k=4 (default add, the paper's)")
  ap.add_argument("--train-size", type=integer("--train-size", 1),
                  help="training examples per seed instead of --frac (sparse parity's m)")
  ap.add_argument("--seeds", type=integer("--seeds", 1), help="seeds per cell")
  ap.add_argument("--seed-stream", metavar="NAME",
                  help="the sample seeds are drawn from (default: the experiment's name, so "
                       "two experiments never share runs; '' is the stream all experiments "
                       "shared before streams existed)")
  ap.add_argument("--save-params", type=flags.save_params, metavar="{none,final,grok,every:N}",
                  help="final: every run's parameters at the step it stopped; grok: at its "
                       "T_grok; every:N: at T_grok and every N steps (a trajectory); in "
                       "params/, one npz per phase, read by grokjax.load(folder).params(run, "
                       "step=); its disk cost is in the plan (default none)")
  ap.add_argument("--lrs", type=floats("--lrs"), help="comma-separated learning rates")
  ap.add_argument("--wd", type=number_in("--wd", 0, None, True), help="weight decay lambda")
  ap.add_argument("--steps", type=integer("--steps", 1), help="step budget of every cell")
  ap.add_argument("--frac", type=number_in("--frac", 0, 1, False), help="train fraction")
  ap.add_argument("--d", type=integer("--d", 1), help="embedding width")
  ap.add_argument("--hidden", type=integer("--hidden", 1), help="MLP hidden width H")
  ap.add_argument("--eval-every", type=integer("--eval-every", 1),
                  help="steps between evaluations: the resolution of T_mem and T_grok")
  ap.add_argument("--chunk-steps", type=integer("--chunk-steps", 1),
                  help="steps per compiled chunk (progress, retirement, checkpoints)")
  ap.add_argument("--retire-margin", type=margin, default=UNSET,
                  help="steps a grokked run keeps training past T_grok; 'none': to its budget")
  ap.add_argument("--n-boot", type=integer("--n-boot", 10), help="bootstrap replicates of the fits")
  ap.add_argument("--grok-persist", type=integer("--grok-persist", 1),
                  help="evaluations in a row test accuracy must stay >= 0.90 for T_grok (default 1)")
  ap.add_argument("--dtype", choices=["float32", "float64"], help="float64 turns on jax x64")
  ap.add_argument("--matmul-precision", choices=list(MATMUL_PRECISIONS),
                  help="float32 (default, the paper's); tensorfloat32 / bfloat16 are faster "
                       "on GPUs and TPUs and change the numbers")
  flags.training_flags(ap)
  registry.get(experiment).add_flags(ap)
  ap.add_argument("--out", help="results folder (default results/<experiment>_<preset>_p<moduli>)")
  ap.add_argument("--force-new", action="store_true", help="discard a previous run in --out")
  ap.add_argument("--no-figures", action="store_true",
                  help="draw no figures (`grokjax figures OUT` draws them from the finished folder)")
  _add_run_flags(ap)
  return ap


def _add_run_flags(ap: argparse.ArgumentParser) -> None:
  """Flags of how a training command runs, shared by the experiments and reproduce.py."""
  ap.add_argument("--no-progress", action="store_true",
                  help="no progress (a bar on a terminal, a line a minute in a log)")
  ap.add_argument("--no-compile-cache", action="store_true",
                  help="do not keep compiled programs in ~/.cache/grokjax/xla ($GROKJAX_CACHE)")
  ap.add_argument("--deterministic", action="store_true",
                  help="GPU: deterministic XLA ops (no atomics in scatter-adds), so a rerun "
                       "gives the same bits; slower. CPU runs are deterministic anyway")
  ap.add_argument("--checkpoint-every", type=number_in("--checkpoint-every", 0, None, True),
                  default=60.0, help="seconds between checkpoints (default 60)")
  ap.add_argument("--overlap", choices=["auto", "on", "off"], default="auto",
                  help="queue each chunk before reading the last one's records (same results; "
                       "auto: on for GPUs and TPUs, off on a CPU)")
  ap.add_argument("--dry-run", action="store_true",
                  help="print the resolved configuration and the plan (runs, run-steps, the "
                       "expected time here, timed on one compiled chunk); train and write nothing")


def start_jax(args) -> None:
  """Before JAX computes anything: determinism, one CPU device per core, the compile
  cache, and several processes when the environment asks for them."""
  from grokjax.engine.runtime import (enable_compilation_cache, maybe_initialize_distributed,
                                      request_determinism, use_cpu_cores)
  if args.deterministic:
    request_determinism()
  use_cpu_cores()
  if not args.no_compile_cache:
    try:
      enable_compilation_cache()
    except OSError as e:
      say(f"warning: the compile cache cannot be made ({e.strerror}: {e.filename}; set "
             "GROKJAX_CACHE to a writable folder): compiling without it")
  try:
    maybe_initialize_distributed()
  except RuntimeError as e:
    raise StartError(str(e)) from None
  import jax
  try:
    jax.devices()
  except (RuntimeError, AssertionError) as e:  # a platform with no device: an assert in jax
    why = (str(e).splitlines() or ["no device of that platform"])[0]
    raise StartError(f"JAX cannot start a backend (JAX_PLATFORMS="
                     f"{os.environ.get('JAX_PLATFORMS', '')!r}): {why}") from None


class StartError(RuntimeError):
  """This machine cannot run what was asked (environment, devices): a one-line message."""


def _one_line(e: BaseException) -> str:
  """An exception as one line: its message, else its type, with the file it names."""
  if isinstance(e, OSError) and e.filename:
    return f"{e.strerror or type(e).__name__}: {e.filename}"
  text = " ".join(str(e).split())
  return text or ("" if isinstance(e, KeyboardInterrupt) else type(e).__name__)


def _overlap(args) -> bool | str:
  return {"on": True, "off": False}.get(args.overlap, "auto")


_NOT_CONFIG = {"preset", "out", "force_new", "retire_margin", "no_progress", "no_compile_cache",
               "deterministic", "checkpoint_every", "overlap", "pad_moduli", "dry_run", "no_figures"}


def parse(experiment: str, argv: Sequence[str] | None, doc: str = ""):
  ap = build_parser(experiment, doc)
  args = ap.parse_args(argv)
  exp = registry.get(experiment)
  if args.preset not in exp.presets:
    raise UsageError(f"--preset: unknown preset {args.preset!r}; choose from "
                     f"{', '.join(exp.presets)}")
  fields = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG}
  if fields.get("layernorm") is False:
    fields["layernorm"] = None  # not given: the preset's
  cfg = registry.resolve(experiment, args.preset, **fields)
  if args.retire_margin is not UNSET:
    cfg = dataclasses.replace(cfg, retire_margin=args.retire_margin)
  if cfg.arch == "transformer" and cfg.d % cfg.heads:
    raise UsageError(f"--d/--heads: d={cfg.d} is not divisible by heads={cfg.heads}")
  exp.check(cfg)
  flags.check_save_params(cfg)
  _check_budgets(cfg, exp.cells(cfg))
  for p in cfg.moduli:
    try:
      cfg.task(p)
    except ValueError as e:
      raise UsageError(f"--moduli/--frac/--problem: {e}")
  if args.out is not None and not args.out.strip():
    raise UsageError("--out: an empty folder name; give a folder, or leave --out out for "
                     "the default")
  out = args.out or os.path.join(
      "results", f"{experiment}_{cfg.preset}_p{'-'.join(map(str, cfg.moduli))}"
      + ("" if cfg.problem == "add" else "_" + cfg.problem.replace(":", "_").replace(",", "_")
         .replace("=", "")))
  if os.path.exists(out) and not os.path.isdir(out):
    raise UsageError(f"--out: {out!r} is a file, not a folder")
  _check_memory(cfg, args)
  return cfg, out, args


def _check_budgets(cfg, cells) -> None:
  """Refuse an evaluation interval as long as a cell's budget (every T_grok would read as
  that interval), and a held-norm cell whose clamp would start at or after its budget."""
  unrounded = dataclasses.replace(cfg, eval_every=1)  # budgets before rounding up to it
  for c in cells:
    where = f"p={c.p} {'free' if c.rho is None else f'rho {c.rho:g}'}"
    raw = min(c.budget, unrounded.budget(c.rho, c.p))
    if cfg.eval_every >= raw:
      raise UsageError(f"--eval-every: {cfg.eval_every} is "
                       f"{'longer than' if cfg.eval_every > raw else 'as long as'} the "
                       f"budget {raw:,} of {where}; T_grok could only be read at the end")
    if c.rho is not None and cfg.t_int >= c.budget:
      raise UsageError(f"--t-int: the clamp would start at step {cfg.t_int:,}, at or past the "
                       f"budget {c.budget:,} of {where}; the cell would train free")


def _check_memory(cfg, args) -> None:
  """Refuse a grid that cannot fit this machine's memory, naming the flag to lower."""
  cells = registry.get(cfg.experiment).cells
  need, have = estimate.memory_needed(cfg, cells(cfg)), estimate.available_memory()
  if need <= have:
    return
  gib = lambda b: f"{b / 2 ** 30:,.1f} GiB"
  for flag, field, noun in (("--hidden", "hidden", "hidden width"), ("--d", "d", "embedding width"),
                            ("--moduli", "moduli", "modulus"),
                            ("--train-sizes", "train_sizes", "training-set size"),
                            ("--steps", "steps", "budget"), ("--seeds", "seeds", "number of seeds")):
    if getattr(args, field, None) is not None:
      try:
        best = estimate.largest_fitting(cfg, field, have, cells)
      except ValueError:  # the search reached a size the problem rejects
        best = None
      if best is not None:
        raise UsageError(f"{flag}: the grid needs about {gib(need)} of memory and this machine "
                         f"has {gib(have)} free; the largest {noun} that fits is {best:,}")
  scans = [flag for flag, field in (("--rhos", "rhos"), ("--lrs", "lrs"), ("--wds", "wds"),
                                     ("--scales", "scales"), ("--hold-rhos", "hold_rhos"))
           if getattr(args, field, None) is not None]
  first = scans[0] if scans else "--preset"
  raise UsageError(f"{first}: the grid needs about {gib(need)} of memory and this machine has "
                   f"{gib(have)} free; lower --seeds, --steps, --moduli, --hidden or --d"
                   + (f", or give fewer values to {', '.join(scans)}" if scans else ""))


def main(experiment: str, run: Callable[[Session], dict] | None = None, argv=None,
         doc: str | None = None) -> int:
  """Parse, validate, then run one experiment (its registered function, or `run`); returns
  the process exit code. A process of a jax.distributed run trains in a supervised child
  of itself (`runtime.supervise`)."""
  try:
    exp = registry.get(experiment)
  except ValueError as e:
    print(f"grokjax: error: {e}", file=sys.stderr)
    return 2
  run = run or exp.run
  try:
    cfg, out, args = parse(experiment, argv, exp.doc if doc is None else doc)
  except UsageError as e:
    print(f"{experiment}: error: {e}", file=sys.stderr)
    return 2
  if runtime.distributed_requested():
    return runtime.supervise(experiment, lambda: _start_and_run(exp, run, cfg, out, args))
  return _start_and_run(exp, run, cfg, out, args)


def _start_and_run(exp: registry.Experiment, run, cfg, out: str, args) -> int:
  """Start JAX, open the results folder and run the experiment; returns the exit code."""
  experiment = exp.name
  try:
    start_jax(args)
  except (StartError, ValueError, KeyboardInterrupt) as e:  # Ctrl-C as JAX imports: one line
    print(f"{experiment}: error: {_one_line(e) or 'interrupted; nothing was written'}",
          file=sys.stderr)
    return 130 if isinstance(e, KeyboardInterrupt) else 2
  if cfg.needs_x64():
    import jax
    jax.config.update("jax_enable_x64", True)
  if args.dry_run:
    print(json.dumps(io.plain(cfg.to_json()), indent=1))
    line, _ = estimate.plan_line(cfg, exp.cells(cfg))
    say(f"{experiment} ({cfg.preset} preset), results folder {out}: {line.strip()}")
    say("dry run: nothing trained, nothing written")
    return 0
  try:
    pad = {"on": True, "off": False}.get(getattr(args, "pad_moduli", "auto"), "auto")
    sess = Session(cfg, out, force_new=args.force_new, progress=not args.no_progress,
                   checkpoint_every_s=args.checkpoint_every, overlap=_overlap(args),
                   pad_moduli=pad, figures=not args.no_figures)
  except (ConfigMismatch, OSError) as e:
    print(f"{experiment}: error: {_one_line(e)}", file=sys.stderr)
    return 2
  say(f"results folder: {out}")
  try:
    run(sess)
  except KeyboardInterrupt:
    print(f"{experiment}: interrupted; the same command resumes where it stopped", file=sys.stderr)
    return 130
  except Exception as e:
    if runtime.lost_peer(e):
      runtime.end_lost_peer()
    if not isinstance(e, (RuntimeError, ValueError, OSError)):
      raise
    print(f"{experiment}: error: {_one_line(e)}", file=sys.stderr)
    return 1
  drawn = "figures/" if sess.figures else f"no figures: grokjax figures {out} draws them"
  say(f"wrote {out}/ (config.json, runs.csv, curves.npz, {exp.output}, {drawn})")
  return 0


def reproduce_main(argv=None, doc: str = "") -> int:
  """`experiments/reproduce.py`: train what is missing, then the paper-vs-ours table."""
  from grokjax.paper import claims, report, runner
  from grokjax.paper.table import MissingResults
  ap = _Parser(prog="reproduce.py", description=doc,
               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--only", help=f"comma-separated claims, from: {', '.join(claims.CLAIMS)}")
  ap.add_argument("--seeds", type=integer("--seeds", 2), help="seeds per cell (default: the paper's)")
  ap.add_argument("--out", default=os.path.join("results", "reproduce"),
                  help="where full results folders (checkpoints, curves) go")
  ap.add_argument("--results", default=os.path.join("docs", "results"),
                  help="the small outputs the table is read from (default docs/results)")
  ap.add_argument("--doc", help="the markdown report to write (default docs/reproduction.md; "
                               "with --only, only when given: a partial report goes to the console)")
  ap.add_argument("--reference", metavar="DIR",
                  help="a checkout of the authors' repository (ClevixLab/critical-norm-grokking): "
                       "every cell both sides ran, compared sample against sample")
  ap.add_argument("--report-only", action="store_true", help="no training: the table from --results")
  ap.add_argument("--n-boot", type=integer("--n-boot", 10), default=1000, help="bootstrap replicates")
  _add_run_flags(ap)
  try:
    args = ap.parse_args(argv)
    names = list(claims.CLAIMS)
    if args.only is not None:
      names = [s.strip() for s in args.only.split(",") if s.strip()]
      bad = [s for s in names if s not in claims.CLAIMS]
      if bad or not names:
        raise UsageError(f"--only: {'unknown claim ' + ', '.join(repr(b) for b in bad) if bad else 'no claim'}"
                         f" in {args.only!r}; choose from {', '.join(claims.CLAIMS)}")
  except UsageError as e:
    print(f"reproduce: error: {e}", file=sys.stderr)
    return 2
  if not args.report_only:
    try:
      start_jax(args)
    except (StartError, ValueError) as e:
      print(f"reproduce: error: {_one_line(e)}", file=sys.stderr)
      return 2
    try:
      runner.run_claims(names, args.out, args.results, args.seeds, not args.no_progress,
                        args.checkpoint_every, say=say, overlap=_overlap(args),
                        dry_run=args.dry_run)
    except ConfigMismatch as e:
      print(f"reproduce: error: {e}", file=sys.stderr)
      return 2
  if args.dry_run:
    return 0
  from grokjax.paper import reference
  cells = None
  if args.reference is not None:
    try:
      cells = reference.load(args.reference)
    except reference.ReferenceError as e:
      print(f"reproduce: error: {e}", file=sys.stderr)
      return 2
  try:
    rows, folders = report.report(args.results, args.n_boot, names, cells)
  except MissingResults as e:
    print(f"reproduce: error: {e}; train it with: python experiments/reproduce.py --only "
          f"{e.claim}", file=sys.stderr)
    return 2
  print(report.format_table(rows))
  comparisons = None
  if cells is not None:
    comparisons = reference.like_for_like(folders, cells, args.n_boot)
    print()
    print(report.format_comparisons(comparisons))
  doc = args.doc or (None if args.only else os.path.join("docs", "reproduction.md"))
  why = doc is not None and not args.doc and report.would_lose(doc, args.results, cells is not None)
  if why:
    print(f"reproduce: error: {why}; nothing was written (--doc FILE writes it elsewhere)",
          file=sys.stderr)
    return 2
  if doc is None:
    print("(--only: the table above only; --doc FILE writes it as markdown)")
    return 0
  missing = [n for n in claims.CLAIMS if n not in folders]
  report.write_markdown(doc, rows, folders, missing, comparisons,
                        report.sections(args.results, folders, cells, args.n_boot, doc))
  print(f"wrote {doc}")
  for path in report.figures(args.results, folders):
    print(f"wrote {path}")
  return 0

