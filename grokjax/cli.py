"""Command-line front end shared by the experiment scripts.

Every flag is validated before any work starts or any folder is made; a bad value ends
the program with one line on stderr naming the flag, the value and what is allowed, and
exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, Callable, Sequence

from grokjax import experiment as ex
from grokjax import problems
from grokjax.train import ARCHS, MATMUL_PRECISIONS


_UNSET = object()  # a flag's default when "not given" and None are different things


class UsageError(Exception):
  """A bad command-line value; the message is the whole one-line explanation."""


class _Parser(argparse.ArgumentParser):
  def error(self, message):  # argparse's own errors, one line, exit 2
    raise UsageError(message)


def _list(flag: str, one: Callable[[str], Any], allowed: str):
  """Parser of a comma-separated list; `one` parses an item or raises ValueError."""
  def parse(text: str) -> list:
    items = [s.strip() for s in text.split(",")]
    if not text.strip() or any(not s for s in items):
      raise UsageError(f"{flag}: empty list {text!r}; give {allowed}")
    out = []
    for s in items:
      try:
        out.append(one(s))
      except ValueError as e:
        raise UsageError(f"{flag}: {e}; give {allowed}")
    return out
  return parse


def _int_at_least(text: str, low: int) -> int:
  try:
    v = int(text)
  except ValueError:
    raise ValueError(f"{text!r} is not an integer")
  if v < low:
    raise ValueError(f"{v} is below {low}")
  return v


def _ints(flag: str, low: int):
  return _list(flag, lambda s: _int_at_least(s, low), f"comma-separated integers >= {low}")


def _floats(flag: str):
  def one(s: str) -> float:
    try:
      v = float(s)
    except ValueError:
      raise ValueError(f"{s!r} is not a number")
    if not math.isfinite(v) or v <= 0:
      raise ValueError(f"{s} is not allowed")
    return v
  return _list(flag, one, "comma-separated finite numbers > 0")


def _int(flag: str, low: int):
  def parse(text: str) -> int:
    try:
      return _int_at_least(text, low)
    except ValueError as e:
      raise UsageError(f"{flag}: {e} (need an integer >= {low})")
  return parse


def _float_in(flag: str, low: float, high: float | None, closed_low: bool):
  def parse(text: str) -> float:
    try:
      v = float(text)
    except ValueError:
      raise UsageError(f"{flag}: {text!r} is not a number")
    ok = (v >= low if closed_low else v > low) and (high is None or v < high) and v == v
    if not ok or v == float("inf"):
      rng = f"{'[' if closed_low else '('}{low:g}, {'inf' if high is None else f'{high:g}'})"
      raise UsageError(f"{flag}: {text} is outside {rng}")
    return v
  return parse


def _margin(text: str) -> int | None:
  if text.lower() == "none":
    return None
  return _int("--retire-margin", 0)(text)


def _problem(text: str) -> str:
  try:
    problems.parse_spec(text)
  except ValueError as e:
    raise UsageError(f"--problem: {e}")
  return text


def build_parser(experiment: str, doc: str = "") -> argparse.ArgumentParser:
  ap = _Parser(prog=f"{experiment}.py", description=doc,
               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--preset", default="paper",
                  help=f"base configuration, one of {', '.join(ex.PRESETS)} (default paper)")
  ap.add_argument("--moduli", type=_ints("--moduli", 3),
                  help="comma-separated moduli p (sparse parity: input bits n)")
  ap.add_argument("--problem", type=_problem,
                  help=f"what is learnt: {', '.join(problems.names())}; options after a colon, "
                       "e.g. sparse_parity:k=4 (default add, the paper's)")
  ap.add_argument("--train-size", type=_int("--train-size", 1),
                  help="training examples per seed instead of --frac (sparse parity's m)")
  ap.add_argument("--seeds", type=_int("--seeds", 1), help="seeds per cell")
  ap.add_argument("--lrs", type=_floats("--lrs"), help="comma-separated learning rates")
  ap.add_argument("--wd", type=_float_in("--wd", 0, None, True), help="weight decay lambda")
  ap.add_argument("--steps", type=_int("--steps", 1), help="step budget of every cell")
  ap.add_argument("--frac", type=_float_in("--frac", 0, 1, False), help="train fraction")
  ap.add_argument("--d", type=_int("--d", 1), help="embedding width")
  ap.add_argument("--hidden", type=_int("--hidden", 1), help="MLP hidden width H")
  ap.add_argument("--eval-every", type=_int("--eval-every", 1),
                  help="steps between evaluations: the resolution of T_mem and T_grok")
  ap.add_argument("--chunk-steps", type=_int("--chunk-steps", 1),
                  help="steps per compiled chunk (progress, retirement, checkpoints)")
  ap.add_argument("--retire-margin", type=_margin, default=_UNSET,
                  help="steps a grokked run keeps training past T_grok; 'none': to its budget")
  ap.add_argument("--n-boot", type=_int("--n-boot", 10), help="bootstrap replicates of the fits")
  ap.add_argument("--grok-persist", type=_int("--grok-persist", 1),
                  help="evaluations in a row test accuracy must stay >= 0.90 for T_grok (default 1)")
  ap.add_argument("--dtype", choices=["float32", "float64"], help="float64 turns on jax x64")
  ap.add_argument("--matmul-precision", choices=list(MATMUL_PRECISIONS),
                  help="float32 (default, the paper's); tensorfloat32 / bfloat16 are faster "
                       "on GPUs and TPUs and change the numbers")
  if experiment not in ("free_training", "free_norm_delay"):
    ap.add_argument("--rhos", type=_floats("--rhos"), help="held norms rho (units of W_c)")
    ap.add_argument("--t-int", type=_int("--t-int", 0), help="first step of the clamp")
  if experiment == "norm_interventions":
    ap.add_argument("--hold-rhos", type=_floats("--hold-rhos"),
                    help="sustained holds rho (--rhos are the one-shot rescales)")
    ap.add_argument("--kick", type=_float_in("--kick", 0, None, False),
                    help="one-shot factor of a single weight group at t_int (default 0.8)")
  if experiment == "sparse_parity":
    ap.add_argument("--wds", type=_floats("--wds"),
                    help="weight decays of the free scan (--wd is the reference)")
    ap.add_argument("--train-sizes", type=_ints("--train-sizes", 1),
                    help="training-set sizes m of the W_c(m) scan")
  if experiment == "free_norm_delay":
    ap.add_argument("--scales", type=_floats("--scales"), help="initial-weight scales s")
    ap.add_argument("--wds", type=_floats("--wds"), help="comma-separated weight decays")
    ap.add_argument("--clamp-from", help="a pinned_norm folder: its delay law joins the figure")
  if experiment in ("free_training", "pinned_norm", "layernorm_ablation"):
    ap.add_argument("--arch", choices=list(ARCHS), help="model architecture")
    ap.add_argument("--heads", type=_int("--heads", 1), help="attention heads (transformer)")
  if experiment in ("free_training", "pinned_norm"):
    ap.add_argument("--layernorm", action="store_true",
                    help="the architecture's LayerNorm variant (MLP: before the output layer)")
  if experiment == "pinned_norm":
    ap.add_argument("--wc-from", help="reuse W_c from a free_training or pinned_norm folder")
  if experiment not in ("free_training", "free_norm_delay"):
    ap.add_argument("--wc-min-grok-fraction",
                    type=_float_in("--wc-min-grok-fraction", 0, 1.0001, False),
                    help="least fraction of a free control that must grok for its W_c (default 0.75)")
  ap.add_argument("--out", help="results folder (default results/<experiment>_<preset>_p<moduli>)")
  ap.add_argument("--force-new", action="store_true", help="discard a previous run in --out")
  _add_run_flags(ap)
  return ap


def _add_run_flags(ap: argparse.ArgumentParser) -> None:
  """Flags of how a training command runs, shared by the experiments and reproduce.py."""
  ap.add_argument("--no-progress", action="store_true", help="no progress bars")
  ap.add_argument("--no-compile-cache", action="store_true",
                  help="do not keep compiled programs in ~/.cache/grokjax/xla ($GROKJAX_CACHE)")
  ap.add_argument("--deterministic", action="store_true",
                  help="GPU: deterministic XLA ops (no atomics in scatter-adds), so a rerun "
                       "gives the same bits; slower. CPU runs are deterministic anyway")
  ap.add_argument("--checkpoint-every", type=_float_in("--checkpoint-every", 0, None, True),
                  default=60.0, help="seconds between checkpoints (default 60)")


def _start_jax(args) -> None:
  """Before JAX computes anything: determinism, one CPU device per core, the compile
  cache, and several processes when the environment asks for them."""
  from grokjax.train import (enable_compilation_cache, maybe_initialize_distributed,
                             request_determinism, use_cpu_cores)
  if args.deterministic:
    request_determinism()
  use_cpu_cores()
  if not args.no_compile_cache:
    enable_compilation_cache()
  maybe_initialize_distributed()


def parse(experiment: str, argv: Sequence[str] | None, doc: str = ""):
  ap = build_parser(experiment, doc)
  args = ap.parse_args(argv)
  if args.preset not in ex.PRESETS:
    raise UsageError(f"--preset: unknown preset {args.preset!r}; choose from {', '.join(ex.PRESETS)}")
  fields = dict(moduli=args.moduli, seeds=args.seeds, lrs=args.lrs, wd=args.wd, steps=args.steps,
                frac=args.frac, d=args.d, hidden=args.hidden, eval_every=args.eval_every,
                chunk_steps=args.chunk_steps, n_boot=args.n_boot, dtype=args.dtype,
                rhos=getattr(args, "rhos", None), t_int=getattr(args, "t_int", None),
                arch=getattr(args, "arch", None), heads=getattr(args, "heads", None),
                layernorm=getattr(args, "layernorm", False) or None,
                wc_from=getattr(args, "wc_from", None),
                wc_min_grok_fraction=getattr(args, "wc_min_grok_fraction", None),
                grok_persist=args.grok_persist, matmul_precision=args.matmul_precision,
                hold_rhos=getattr(args, "hold_rhos", None), kick=getattr(args, "kick", None),
                scales=getattr(args, "scales", None), wds=getattr(args, "wds", None),
                clamp_from=getattr(args, "clamp_from", None), problem=args.problem,
                train_size=args.train_size, train_sizes=getattr(args, "train_sizes", None))
  cfg = ex.resolve(experiment, args.preset, **fields)
  if args.retire_margin is not _UNSET:
    cfg.retire_margin = args.retire_margin
  if cfg.wc_from and not os.path.isdir(cfg.wc_from):
    raise UsageError(f"--wc-from: {cfg.wc_from!r} is not a folder")
  mismatch = cfg.wc_from and ex.wc_source_mismatch(cfg, cfg.wc_from)
  if mismatch:
    raise UsageError(f"--wc-from: {mismatch}; its W_c is not this configuration's")
  if experiment in ("pinned_norm", "layernorm_ablation", "norm_interventions") and len(cfg.lrs) != 1:
    raise UsageError(f"--lrs: {experiment} holds one learning rate; use norm_vs_lr for several")
  if experiment in ("norm_interventions", "free_norm_delay", "sparse_parity") and len(cfg.moduli) != 1:
    raise UsageError(f"--moduli: {experiment} runs at one modulus")
  if cfg.clamp_from and not os.path.isfile(os.path.join(cfg.clamp_from, "runs.csv")):
    raise UsageError(f"--clamp-from: {cfg.clamp_from!r} holds no runs.csv")
  if cfg.arch == "transformer" and cfg.d % cfg.heads:
    raise UsageError(f"--d/--heads: d={cfg.d} is not divisible by heads={cfg.heads}")
  if experiment == "norm_vs_lr" and len(cfg.moduli) != 1:
    raise UsageError("--moduli: norm_vs_lr runs at one modulus")
  if experiment not in ("free_training", "free_norm_delay") and not cfg.rhos:
    raise UsageError("--rhos: need at least one held norm")
  for p in cfg.moduli:
    try:
      cfg.task(p)
    except ValueError as e:
      raise UsageError(f"--moduli/--frac/--problem: {e}")
  out = args.out or os.path.join(
      "results", f"{experiment}_{cfg.preset}_p{'-'.join(map(str, cfg.moduli))}")
  if os.path.exists(out) and not os.path.isdir(out):
    raise UsageError(f"--out: {out!r} is a file, not a folder")
  _check_memory(cfg, args)
  return cfg, out, args


def _check_memory(cfg, args) -> None:
  """Refuse a grid that cannot fit this machine's memory, naming the flag to lower."""
  need, have = ex.memory_needed(cfg), ex.available_memory()
  if need <= have:
    return
  gib = lambda b: f"{b / 2 ** 30:,.1f} GiB"
  for flag, field, noun in (("--moduli", "moduli", "modulus"), ("--steps", "steps", "budget"),
                            ("--seeds", "seeds", "number of seeds")):
    if getattr(args, field, None) is not None:
      best = ex.largest_fitting(cfg, field, have)
      if best is not None:
        raise UsageError(f"{flag}: the grid needs about {gib(need)} of memory and this machine "
                         f"has {gib(have)} free; the largest {noun} that fits is {best:,}")
  raise UsageError(f"--preset: the grid needs about {gib(need)} of memory and this machine has "
                   f"{gib(have)} free; lower --seeds, --steps or --moduli")


def main(experiment: str, run: Callable[[ex.Session], dict], argv=None, doc: str = "") -> int:
  """Parse, validate, then run one experiment; returns the process exit code."""
  try:
    cfg, out, args = parse(experiment, argv, doc)
  except UsageError as e:
    print(f"{experiment}: error: {e}", file=sys.stderr)
    return 2
  _start_jax(args)
  if cfg.dtype == "float64":
    import jax
    jax.config.update("jax_enable_x64", True)
  try:
    sess = ex.Session(cfg, out, force_new=args.force_new, progress=not args.no_progress,
                      checkpoint_every_s=args.checkpoint_every)
  except ex.ConfigMismatch as e:
    print(f"{experiment}: error: {e}", file=sys.stderr)
    return 2
  ex.say(f"results folder: {out}")
  try:
    run(sess)
  except (RuntimeError, ValueError) as e:
    print(f"{experiment}: error: {e}", file=sys.stderr)
    return 1
  ex.say(f"wrote {out}/ (config.json, runs.csv, curves.npz, "
         f"{'summary.json' if experiment in ('free_training', 'sparse_parity') else 'fit.json'}, "
         "figures/)")
  return 0


def reproduce_main(argv=None, doc: str = "") -> int:
  """`experiments/reproduce.py`: train what is missing, then the paper-vs-ours table."""
  from grokjax import reproduce as rp
  ap = _Parser(prog="reproduce.py", description=doc,
               formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--only", help=f"comma-separated claims, from: {', '.join(rp.CLAIMS)}")
  ap.add_argument("--seeds", type=_int("--seeds", 2), help="seeds per cell (default: the paper's)")
  ap.add_argument("--out", default=os.path.join("results", "reproduce"),
                  help="where full results folders (checkpoints, curves) go")
  ap.add_argument("--results", default=os.path.join("docs", "results"),
                  help="the small outputs the table is read from (default docs/results)")
  ap.add_argument("--doc", default=os.path.join("docs", "reproduction.md"),
                  help="the markdown report to write (default docs/reproduction.md)")
  ap.add_argument("--report-only", action="store_true", help="no training: the table from --results")
  ap.add_argument("--n-boot", type=_int("--n-boot", 10), default=1000, help="bootstrap replicates")
  _add_run_flags(ap)
  try:
    args = ap.parse_args(argv)
    names = list(rp.CLAIMS)
    if args.only:
      names = [s.strip() for s in args.only.split(",")]
      bad = [s for s in names if s not in rp.CLAIMS]
      if bad or not names:
        raise UsageError(f"--only: unknown claim {', '.join(bad) or repr(args.only)}; "
                         f"choose from {', '.join(rp.CLAIMS)}")
  except UsageError as e:
    print(f"reproduce: error: {e}", file=sys.stderr)
    return 2
  if not args.report_only:
    _start_jax(args)
    try:
      rp.run_claims(names, args.out, args.results, args.seeds, not args.no_progress,
                    args.checkpoint_every, say=ex.say)
    except ex.ConfigMismatch as e:
      print(f"reproduce: error: {e}", file=sys.stderr)
      return 2
  try:
    rows, folders = rp.report(args.results, args.n_boot, names)
  except rp.MissingResults as e:
    print(f"reproduce: error: {e}; train it with: python experiments/reproduce.py --only "
          f"{e.claim}", file=sys.stderr)
    return 2
  print(rp.format_table(rows))
  missing = [n for n in rp.CLAIMS if n not in folders]
  rp.write_markdown(args.doc, rows, folders, missing)
  print(f"wrote {args.doc}")
  return 0

