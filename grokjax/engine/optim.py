"""Optimizer transforms: AdamW on the weight matrices, and the global norm clamp.

`clamp_global_norm` is an ordinary optax `GradientTransformation`; it composes with any
optax chain and any parameter pytree, not only grokjax models.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

from grokjax.problems.models import weight_mask, weight_norm

NEVER = jnp.iinfo(jnp.int32).max  # a start step no run reaches: the clamp stays off

MaskOrFn = Union[Any, Callable[[Any], Any], None]


class ClampGlobalNormState(NamedTuple):
  """`clamp_global_norm`'s state: the number of updates seen so far (int32 scalar)."""
  count: jax.Array


class ScaleWeightsState(NamedTuple):
  """`scale_weights`'s state: the number of updates seen so far (int32 scalar)."""
  count: jax.Array


def _resolve_mask(mask: MaskOrFn, params):
  return mask(params) if callable(mask) else (weight_mask(params) if mask is None else mask)


def _window_rescale(name: str, factor_fn, start_step, stop_step, mask, state_type
                    ) -> optax.GradientTransformation:
  """Multiply the masked leaves of params + u by factor_fn(params + u, mask) on the
  updates k (1-based) with start_step <= k <= stop_step; pass other updates through."""
  stop_step = NEVER if stop_step is None else stop_step

  def init_fn(params):
    del params
    return state_type(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(f"{name} needs the current parameters: call "
                       "update(updates, state, params) with params")
    m = _resolve_mask(mask, params)
    new = optax.apply_updates(params, updates)
    factor = factor_fn(new, m)
    k = state.count + 1
    active = (k >= start_step) & (k <= stop_step)

    def project(p, u, n, in_mask):
      if in_mask is False:
        return u
      return jnp.where(active & jnp.asarray(in_mask), (n * factor).astype(p.dtype) - p, u)

    updates = jax.tree.map(project, params, updates, new, m)
    return updates, state_type(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(init_fn, update_fn)


def clamp_global_norm(target_norm: float | jax.Array,
                      start_step: int | jax.Array = 0,
                      stop_step: int | jax.Array | None = None,
                      mask: MaskOrFn = None) -> optax.GradientTransformation:
  """Hold the global norm of the masked parameters at `target_norm` from a step on.

  Put it last in a chain: it turns the incoming updates u into updates that land the
  masked leaves of params + u on the sphere ||W|| = target_norm, with one global factor
  target_norm / ||params + u|| over all masked leaves. Leaves outside the mask keep
  their updates. The parameters produced by update k (k = 1, 2, ...) are projected
  when start_step <= k <= stop_step; the other updates pass through unchanged.
  Optimizer moments upstream are never touched.

  The arguments come in `scale_weights`'s order (value, start, stop, mask).
  `target_norm`, `start_step` and `stop_step` may be traced arrays, so one compiled
  program can vmap the transform over runs that each hold a different norm.

  Args:
    target_norm: the held norm ||W|| (same units as the parameters' Frobenius norm).
    start_step: first update whose result is projected (1-based; 0 or 1: from the first).
    stop_step: last update projected (None: every one from start_step on). With
      start_step == stop_step the projection is a one-shot rescale.
    mask: pytree of bools like params (Python or traced), or a callable params -> such a
      pytree; None selects every leaf with ndim >= 2 (`grokjax.problems.models.weight_mask`).

  Returns:
    An `optax.GradientTransformation` whose `update` requires `params`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from grokjax.engine.optim import clamp_global_norm
    >>> params = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    >>> opt = optax.chain(optax.sgd(0.1), clamp_global_norm(2.0))
    >>> state = opt.init(params)
    >>> grads = {"w": jnp.ones((3, 4)), "b": jnp.ones(4)}
    >>> updates, state = opt.update(grads, state, params)
    >>> new = optax.apply_updates(params, updates)
    >>> round(float(jnp.linalg.norm(new["w"])), 5), round(float(new["b"][0]), 5)
    (2.0, 0.9)
  """
  def factor(new, m):
    norm = weight_norm(new, m)
    return jnp.asarray(target_norm, norm.dtype) / norm
  return _window_rescale("clamp_global_norm", factor, start_step, stop_step, mask,
                         ClampGlobalNormState)


def scale_weights(factor: float | jax.Array, start_step: int | jax.Array = 1,
                  stop_step: int | jax.Array | None = None, mask: MaskOrFn = None
                  ) -> optax.GradientTransformation:
  """Multiply the masked parameters by `factor` after the updates start_step..stop_step.

  The intervention of a one-shot kick: with start_step == stop_step == t the weights are
  scaled once, after update t, and training continues freely (compare `clamp_global_norm`,
  which holds the norm on every step). `mask` selects a group of leaves (for example only
  the embedding); it may hold traced bools, so each vmapped run can kick another group.
  Put it last in a chain; needs `params`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from grokjax.engine.optim import scale_weights
    >>> params = {"w": jnp.ones((2, 2)), "v": jnp.ones((2, 2))}
    >>> opt = optax.chain(optax.sgd(0.0), scale_weights(0.8, 1, 1, mask={"w": True, "v": False}))
    >>> state = opt.init(params)
    >>> u, state = opt.update(params, state, params)
    >>> new = optax.apply_updates(params, u)
    >>> round(float(new["w"][0, 0]), 6), float(new["v"][0, 0])
    (0.8, 1.0)
  """
  stop = start_step if stop_step is None else stop_step
  return _window_rescale("scale_weights",
                         lambda new, m: jnp.asarray(factor, jax.tree.leaves(new)[0].dtype),
                         start_step, stop, mask, ScaleWeightsState)


def adamw_matrices(learning_rate: float | jax.Array, weight_decay: float | jax.Array,
                   b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                   ) -> optax.GradientTransformation:
  """The paper's AdamW: decoupled weight decay on the weight matrices only.

  p <- p (1 - lr * wd) - lr * mhat / (sqrt(vhat) + eps) for matrices, without the decay
  term for the other leaves.
  """
  return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps,
                     weight_decay=weight_decay, mask=weight_mask)


# The base updates a Task can name (`Task.optimizer`, --optimizer NAME[:k=v,...]), each with
# the options it takes and their defaults; the learning rate and weight decay are per run.
OPTIMIZERS: dict[str, dict[str, float]] = {
    "adamw": dict(b1=0.9, b2=0.999, eps=1e-8),
    "sgd": dict(momentum=0.9),
    "lion": dict(b1=0.9, b2=0.99),
    "muon": dict(beta=0.95, split=0.0),
}
# muon:split=1: these weight groups (the model's `GROUPS`) take the paper's AdamW, the usual
# split (Muon orthogonalises the hidden matrices; embeddings and unembedding are not).
MUON_SPLIT_GROUPS = ("embedding", "output")
# The gradient transforms before the base update (`Task.grad_transform`), with options.
GRAD_TRANSFORMS: dict[str, dict[str, float]] = {
    "none": {}, "grokfast": dict(alpha=0.98, lamb=2.0), "orthogonal": {}}


def parse_spec(spec: str, table: dict[str, dict[str, float]], what: str
               ) -> tuple[str, dict[str, float]]:
  """NAME[:k=v,...] against `table`: the name and its options with defaults filled in;
  ValueError naming what is wrong.

  >>> parse_spec("sgd:momentum=0.5", OPTIMIZERS, "optimizer")
  ('sgd', {'momentum': 0.5})
  """
  name, _, rest = str(spec).partition(":")
  if name not in table:
    raise ValueError(f"unknown {what} {name!r}; choose from {', '.join(table)}")
  options = dict(table[name])
  for item in filter(None, (x.strip() for x in rest.split(","))):
    key, eq, value = item.partition("=")
    if not eq or key not in options:
      raise ValueError(f"{what} {name}: {item!r} is not one of its options "
                       f"({', '.join(f'{k}=' for k in options) or 'none'})")
    try:
      options[key] = float(value)
    except ValueError:
      raise ValueError(f"{what} {name}: {key}={value!r} is not a number") from None
  return name, options


# Each base update's momentum option: what a run's own `Runs.momentum` replaces.
MOMENTUM_OPTION = {"adamw": "b1", "sgd": "momentum", "lion": "b1", "muon": "beta"}


def _or_default(value, default):
  """A per-run option value, or the spec's `default` where it is NaN or negative."""
  value = jnp.asarray(value)
  return jnp.where(jnp.isnan(value) | (value < 0), jnp.asarray(default, value.dtype), value)


def base_update(spec: str, learning_rate, weight_decay, momentum=None,
                adamw_leaves: Collection[str] = ()) -> optax.GradientTransformation:
  """The base update `spec` names (OPTIMIZERS), weight decay on the matrices only:
  decoupled for AdamW, Lion and Muon, added to the gradient (torch's SGD) for SGD.
  momentum: a run's own value of its momentum option (`MOMENTUM_OPTION`; traced arrays
  allowed; NaN or negative: the spec's), None: the spec's alone.
  adamw_leaves: under muon:split=1, the names of a flat parameter dict's leaves that take
  the paper's AdamW instead (`MUON_SPLIT_GROUPS` of the model); vectors take it too."""
  name, o = parse_spec(spec, OPTIMIZERS, "optimizer")
  if name == "muon" and o["split"] not in (0.0, 1.0):
    raise ValueError(f"optimizer muon: split={o['split']:g} is neither 0 nor 1")
  if momentum is not None:
    o[MOMENTUM_OPTION[name]] = _or_default(momentum, o[MOMENTUM_OPTION[name]])
  if name == "adamw":
    return adamw_matrices(learning_rate, weight_decay, o["b1"], o["b2"], o["eps"])
  if name == "sgd":
    m = o["momentum"] if momentum is not None else (o["momentum"] or None)
    return optax.chain(optax.add_decayed_weights(weight_decay, mask=weight_mask),
                       optax.sgd(learning_rate, momentum=m))
  if name == "lion":
    return optax.lion(learning_rate, b1=o["b1"], b2=o["b2"], weight_decay=weight_decay,
                      mask=weight_mask)
  from optax import contrib
  muon = contrib.muon(learning_rate, beta=o["beta"], weight_decay=weight_decay,
                      weight_decay_mask=weight_mask)
  if not o["split"]:
    return muon
  if not adamw_leaves:
    raise ValueError("optimizer muon:split=1 needs the leaves that take AdamW (adamw_leaves)")
  label = lambda params: {k: "muon" if k not in adamw_leaves and jnp.ndim(x) >= 2 else "adamw"
                          for k, x in params.items()}
  return optax.partition({"muon": muon, "adamw": adamw_matrices(learning_rate, weight_decay)},
                         label)


def grad_transform(spec: str, options: dict[str, Any] | None = None
                   ) -> optax.GradientTransformation | None:
  """The gradient transform `spec` names (GRAD_TRANSFORMS), or None for "none".

  options: per-run values of its options (traced arrays allowed), each NaN or negative
  where the spec's value applies: `{"alpha": a, "lamb": l}` for Grokfast."""
  from grokjax.engine.transforms import grokfast_ema, orthogonal_grad
  name, o = parse_spec(spec, GRAD_TRANSFORMS, "gradient transform")
  for key, value in (options or {}).items():
    if key in o and value is not None:
      o[key] = _or_default(value, o[key])
  if name == "grokfast":
    return grokfast_ema(o["alpha"], o["lamb"])
  return orthogonal_grad() if name == "orthogonal" else None


def paper_optimizer(learning_rate, weight_decay, target_norm=1.0, start_step=NEVER,
                    stop_step=None, kick=1.0, kick_step=NEVER, kick_mask: MaskOrFn = None,
                    clamp_mask: MaskOrFn = None, optimizer: str = "adamw",
                    grad: str = "none", grad_options: dict[str, Any] | None = None,
                    momentum=None, adamw_leaves: Collection[str] = ()
                    ) -> optax.GradientTransformation:
  """AdamW on matrices (or the base update `optimizer` names, `base_update`; after the
  gradient transform `grad` names, `grad_transform`, with per-run `grad_options`; a run's
  own `momentum`; muon:split=1's `adamw_leaves`), then the norm clamp, then a one-shot kick.

  The defaults leave the clamp and the kick off. The clamp holds ||W|| at target_norm on
  the updates start_step..stop_step, over the matrices in clamp_mask (default all: one
  weight group's norm, the others free); the kick multiplies the matrices in kick_mask
  (default all) by `kick` after update kick_step.
  """
  pre = grad_transform(grad, grad_options)
  base = base_update(optimizer, learning_rate, weight_decay, momentum, adamw_leaves)
  return optax.chain(*([pre] if pre is not None else []), base,
                     clamp_global_norm(target_norm, start_step,
                                       mask=weight_mask if clamp_mask is None else clamp_mask,
                                       stop_step=stop_step),
                     scale_weights(kick, kick_step, kick_step,
                                   mask=weight_mask if kick_mask is None else kick_mask))
