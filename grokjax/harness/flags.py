"""Flag parsers and flag groups shared by the experiment modules and `grokjax.cli`.

A parser raises `UsageError` with the whole one-line explanation (flag, value, what is
allowed); `grokjax.cli` prints it and exits 2 before any work starts.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

from grokjax.engine.spec import ARCHS


class UsageError(Exception):
  """A bad command-line value; the message is the whole one-line explanation."""


UNSET = object()  # a flag's default when "not given" and None are different things


def list_of(flag: str, one: Callable[[str], Any], allowed: str):
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
    twice = [x for i, x in enumerate(out) if x in out[:i]]
    if twice:
      raise UsageError(f"{flag}: {items[out.index(twice[0])]} appears twice in {text!r}; "
                       "each value once")
    return out
  return parse


def int_at_least(text: str, low: int) -> int:
  try:
    v = int(text)
  except ValueError:
    raise ValueError(f"{text!r} is not an integer")
  if v < low:
    raise ValueError(f"{v} is below {low}")
  return v


def ints(flag: str, low: int):
  return list_of(flag, lambda s: int_at_least(s, low), f"comma-separated integers >= {low}")


def floats(flag: str):
  def one(s: str) -> float:
    try:
      v = float(s)
    except ValueError:
      raise ValueError(f"{s!r} is not a number")
    if not math.isfinite(v) or v <= 0:
      raise ValueError(f"{s} is not allowed")
    return v
  return list_of(flag, one, "comma-separated finite numbers > 0")


def integer(flag: str, low: int):
  def parse(text: str) -> int:
    try:
      return int_at_least(text, low)
    except ValueError as e:
      raise UsageError(f"{flag}: {e} (need an integer >= {low})")
  return parse


def number_in(flag: str, low: float, high: float | None, closed_low: bool,
              closed_high: bool = False):
  def parse(text: str) -> float:
    try:
      v = float(text)
    except ValueError:
      raise UsageError(f"{flag}: {text!r} is not a number")
    below = high is None or (v <= high if closed_high else v < high)
    ok = (v >= low if closed_low else v > low) and below and v == v
    if not ok or v == float("inf"):
      rng = (f"{'[' if closed_low else '('}{low:g}, {'inf' if high is None else f'{high:g}'}"
             f"{']' if closed_high else ')'}")
      raise UsageError(f"{flag}: {text} is outside {rng}")
    return v
  return parse


def save_params(text: str) -> str:
  """--save-params: none, final, grok or every:N."""
  from grokjax.engine.keep import keep_every
  try:
    keep_every(text)
  except ValueError:
    raise UsageError(f"--save-params: {text!r} is none of none, final, grok, every:N (N a "
                     "positive number of steps)") from None
  return text


def check_save_params(cfg) -> None:
  """every:N saves at evaluations: N must be a multiple of --eval-every."""
  from grokjax.engine.keep import keep_every
  every = keep_every(cfg.save_params)
  if every is not None and every % cfg.eval_every:
    raise UsageError(f"--save-params every:{every}: N must be a multiple of --eval-every "
                     f"({cfg.eval_every})")


def spec_of(flag: str, table: dict, what: str):
  """A NAME[:k=v,...] flag checked against `table` (grokjax.engine.optim's)."""
  def parse(text: str) -> str:
    from grokjax.engine.optim import parse_spec
    try:
      parse_spec(text, table, what)
    except ValueError as e:
      raise UsageError(f"{flag}: {e}") from None
    return text
  return parse


def training_flags(ap: argparse.ArgumentParser) -> None:
  """The flags of the training itself: the loss, parameter noise, the output temperature,
  the optimiser and a gradient transform before it."""
  from grokjax.engine.losses import LOSSES
  from grokjax.engine.optim import GRAD_TRANSFORMS, OPTIMIZERS
  ap.add_argument("--loss", choices=list(LOSSES),
                  help="training loss: cross_entropy (default, the framework's), log_softmax "
                       "(the authors' PyTorch form), exact (no float32 floor), float32_floor "
                       "(float32's absorption on purpose, for --dtype float64), stablemax "
                       "(StableMax cross-entropy), mse (on one-hot targets)")
  ap.add_argument("--noise", type=number_in("--noise", 0, None, True),
                  help="k: Gaussian noise k * 2^-24 * |theta| on every parameter after every "
                       "update, from a key stream of its own (default 0: none)")
  ap.add_argument("--temperature", type=number_in("--temperature", 0, None, False),
                  help="T: every run's logits are divided by T in its loss and evaluations "
                       "(default 1: none)")
  opts = lambda table: "; ".join(f"{k}" + (":" + ",".join(f"{o}={v:g}" for o, v in d.items())
                                           if d else "") for k, d in table.items())
  ap.add_argument("--optimizer", type=spec_of("--optimizer", OPTIMIZERS, "optimizer"),
                  help=f"the base update before the clamp, options after a colon: {opts(OPTIMIZERS)} "
                       "(default adamw, the paper's)")
  ap.add_argument("--grad-transform", type=spec_of("--grad-transform", GRAD_TRANSFORMS,
                                                   "gradient transform"),
                  help=f"a gradient transform before the base update: {opts(GRAD_TRANSFORMS)} "
                       "(grokfast: Grokfast's EMA filter; orthogonal: ⊥Grad)")


def margin(text: str) -> int | None:
  if text.lower() == "none":
    return None
  return integer("--retire-margin", 0)(text)


def clamp_flags(ap: argparse.ArgumentParser) -> None:
  """The flags of every experiment with clamp cells."""
  ap.add_argument("--rhos", type=floats("--rhos"), help="held norms rho (units of W_c)")
  ap.add_argument("--t-int", type=integer("--t-int", 0), help="first step of the clamp")
  ap.add_argument("--wc-min-grok-fraction",
                  type=number_in("--wc-min-grok-fraction", 0, 1, False, closed_high=True),
                  help="least fraction of a free control that must grok for its W_c (default 0.75)")


def arch_flags(ap: argparse.ArgumentParser, layernorm: bool = True) -> None:
  ap.add_argument("--arch", choices=list(ARCHS), help="model architecture")
  ap.add_argument("--heads", type=integer("--heads", 1), help="attention heads (transformer)")
  if layernorm:
    ap.add_argument("--layernorm", action="store_true",
                    help="the architecture's LayerNorm variant (MLP: before the output layer)")


def one_lr(cfg, name: str) -> None:
  if len(cfg.lrs) != 1:
    raise UsageError(f"--lrs: {name} holds one learning rate; use norm_vs_lr for several")


def one_modulus(cfg, name: str) -> None:
  if len(cfg.moduli) != 1:
    raise UsageError(f"--moduli: {name} runs at one modulus")


def some_rhos(cfg) -> None:
  if not cfg.rhos:
    raise UsageError("--rhos: need at least one held norm")


def known_group(cfg) -> None:
  """--norm-group names a weight group of the configured model."""
  if cfg.norm_group == "all":
    return
  from flax import nnx
  groups = type(nnx.eval_shape(lambda: cfg.task(cfg.moduli[0]).make_model(nnx.Rngs(0)))).GROUPS
  if not groups.get(cfg.norm_group):
    raise UsageError(f"--norm-group: the {cfg.arch} model has no group {cfg.norm_group!r} "
                     f"(its groups: {', '.join(g for g in groups if groups[g])})")


def scan(text: str) -> dict[str, list[float]]:
  """--scan AXIS=V1,V2,...: one per-run hyperparameter (`config.SCAN_AXES`) and its distinct
  values, each checked by the rule `Runs` applies to that field."""
  import numpy as np
  from grokjax.engine.optim import NEVER
  from grokjax.engine.spec import Runs
  from grokjax.harness.config import SCAN_AXES
  axis, sep, values = text.partition("=")
  axis = axis.strip()
  if not sep or axis not in SCAN_AXES:
    raise UsageError(f"--scan: {text!r} is not AXIS=V1,V2,... with AXIS one of "
                     f"{', '.join(SCAN_AXES)}")
  def one(v: str) -> float:
    try:
      x = float(v)
    except ValueError:
      raise ValueError(f"{v!r} is not a number") from None
    if not math.isfinite(x):
      raise ValueError(f"{v} is not finite")
    try:
      Runs([0], 1.0, 0.0, np.nan, NEVER, 1, **{axis: x})
    except ValueError as e:
      raise ValueError(str(e)) from None
    return x
  return {axis: list_of(f"--scan {axis}", one, f"values of {axis}")(values)}


def scan_flag(ap: argparse.ArgumentParser, per_value: str) -> None:
  """--scan AXIS=V1,V2,...: one per-run hyperparameter over values, in one program."""
  ap.add_argument("--scan", type=scan, metavar="AXIS=V1,V2,...",
                  help="one per-run hyperparameter over these values, every value in one "
                       "program with the same seeds: temperature (the output temperature), "
                       "momentum (the base update's: SGD's momentum, AdamW's b1, Muon's beta), "
                       "grokfast_alpha or grokfast_lamb (with --grad-transform grokfast); "
                       + per_value)


def check_scan(cfg) -> None:
  """A --scan's values are every run's own: refused beside a flag that sets the same value
  for all, and Grokfast values without Grokfast."""
  from grokjax.harness.config import SCAN_AXES
  if not cfg.scan:
    return
  axis = cfg.scan_axis
  if axis == "temperature" and cfg.temperature != 1.0:
    raise UsageError(f"--scan temperature: --temperature {cfg.temperature:g} would set "
                     "every run's; give the temperatures to --scan only")
  if SCAN_AXES[axis] == "grokfast" and not cfg.task(cfg.moduli[0]).grokfast:
    raise UsageError(f"--scan {axis}: a run's own Grokfast value needs "
                     "--grad-transform grokfast")


def rho_range(text: str) -> list[float]:
  """--fit-rhos LO:HI, two held norms with 0 < LO < HI."""
  lo, sep, hi = text.partition(":")
  try:
    vals = [float(lo), float(hi)] if sep else None
  except ValueError:
    vals = None
  if not vals or not all(math.isfinite(v) for v in vals) or not 0 < vals[0] < vals[1]:
    raise UsageError(f"--fit-rhos: {text!r} is not LO:HI with 0 < LO < HI (e.g. 0.85:1.25)")
  return vals
