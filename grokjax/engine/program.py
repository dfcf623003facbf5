"""The per-run program of a Task: init from a seed, one training step (AdamW, the clamp,
kicks), an evaluation, and a chunk of steps compiled for a batch of runs (vmapped, or
mapped one at a time, and sharded over devices). Asked to, it also keeps each run's
parameters at its T_grok, captured on the device at the evaluation that meets the grok rule.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from grokjax.problems.models import weight_norm
from grokjax.engine import losses
from grokjax.engine.optim import MUON_SPLIT_GROUPS, NEVER, paper_optimizer
from grokjax.engine.spec import WEIGHT_GROUPS, HParams, Runs, Task
from grokjax.engine.state import GrokState, PaddedData, RunState


# ln(2^126): beyond this logit margin every other class's softmax probability lies below
# float32's smallest normal number, where backends differ (denormals kept or flushed).
COLLAPSE_MARGIN = 126 * 0.6931471805599453


def softmax_collapsed(logits: jax.Array) -> jax.Array:
  """Per sample, whether its softmax has collapsed to one-hot in float32: the top logit
  exceeds every other by more than `COLLAPSE_MARGIN`, so no other class keeps a normal
  float32 probability. Computed from the logit margin, it reads the same on every backend.

  (Before, a sample counted as collapsed when every other probability was exactly 0.0:
  a margin of about 103.3 where a backend keeps denormals and 87.3 where it flushes them,
  so the same weights could read differently on two backends. Results written before
  2026-11-23 use that meaning.)
  """
  top = jnp.argmax(logits, axis=-1)
  others = jnp.where(jax.nn.one_hot(top, logits.shape[-1], dtype=bool), -jnp.inf, logits)
  return jnp.max(logits, axis=-1) - jnp.max(others, axis=-1) > COLLAPSE_MARGIN


# The key stream of a run's parameter noise: its seed's key folded with this tag, a stream
# apart from the init and the split (which split the seed's key itself).
NOISE_STREAM = 0x6E6F6973


class GrokRule(NamedTuple):
  """What `grokjax.engine.reduce.grok_times` calls grokked: test accuracy >= threshold for
  `persist` evaluations in a row, T_grok being the first of them."""
  threshold: float
  persist: int = 1


def at_least(threshold: float, dtype) -> float:
  """The smallest value of `dtype` that is >= threshold: for x of that dtype, x >= it
  exactly when float64(x) >= threshold, the comparison `grokjax.engine.reduce` makes on the host.

  Example:
    >>> at_least(0.9, "float32") > 0.9 > float(np.float32(0.9))
    True
  """
  t = np.asarray(threshold, dtype)
  if float(t) < threshold:
    t = np.nextafter(t, np.asarray(np.inf, dtype))
  return float(t)


class Program:
  """The jitted functions of one Task: init a batch of runs, train it for a chunk.

  With a `GrokRule`, each run's state also holds `grok`: its parameters at the first
  evaluation of its latest streak at or above the threshold (NaN before one), the
  streak's length and that evaluation's step. Once the streak reaches `persist` the run
  has grokked at that step, which is its T_grok, and `grok` no longer changes. Without one,
  the program is the plain one.
  """

  def __init__(self, task: Task, grok: GrokRule | None = None):
    self.task = task
    self.grok = grok
    self.grok_level = None if grok is None else at_least(grok.threshold, task.dtype)
    abstract = nnx.eval_shape(lambda: task.make_model(nnx.Rngs(0)))
    self.graphdef, abstract_state = nnx.split(abstract)
    self.shapes = {k: v.shape for k, v in nnx.to_pure_dict(abstract_state).items()}
    self.groups = type(abstract).GROUPS  # the model's weight groups (WEIGHT_GROUPS)
    # muon:split=1's AdamW leaves: the model's embedding and output matrices
    self.adamw_leaves = frozenset(n for g in MUON_SPLIT_GROUPS for n in self.groups.get(g, ()))
    self.problem = task.problem_def
    self._init_batch = self.precise(jax.vmap(self._init_one))
    self.init = jax.jit(self._init_batch)
    self._inits: dict[Any, Callable] = {}
    self._chunks: dict[tuple, Callable] = {}
    self.seen: set[tuple] = set()  # (chunk fn, batch size) pairs already run: compiled
    one = jax.eval_shape(self._init_one, jnp.zeros([], jnp.uint32))
    self.curve_names = tuple(jax.eval_shape(self.evaluate, one))

  def init_on(self, sharding) -> Callable:
    """`init` whose state is born split over `sharding`'s devices: no eager slicing of a
    one-device state into shards afterwards (a small compiled program per leaf shape)."""
    if sharding not in self._inits:
      self._inits[sharding] = jax.jit(self._init_batch, out_shardings=sharding)
    return self._inits[sharding]

  def model(self, params, layernorm=None):
    """The module with these parameters; under Task(layernorm="per_run") `layernorm` is the
    run's traced switch (None: on)."""
    model = nnx.merge(self.graphdef, params)
    if self.task.layernorm == "per_run":
      model.layernorm = True if layernorm is None else layernorm
    return model

  def _init_one(self, seed: jax.Array, which: jax.Array | int = 0) -> RunState:
    """One run's state from its seed; under a padded Task `which` indexes its size."""
    t = self.task
    if t.sizes is None:
      params, data = self._params_and_split(t, seed)
    else:
      params, data = jax.lax.switch(
          which, [functools.partial(self._padded, q) for q in t.sizes], seed)
    params = jax.tree.map(lambda x: x.astype(t.dtype), params)
    opt = paper_optimizer(1.0, 1.0, optimizer=t.optimizer, grad=t.grad_transform,  # structure
                          momentum=-1.0 if t.momentum else None, adamw_leaves=self.adamw_leaves)
    noise_key = None
    if t.noise:
      noise_key = jax.random.key_data(jax.random.fold_in(jax.random.key(seed), NOISE_STREAM))
    grok = None
    if self.grok is not None:
      grok = GrokState(params=jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), params),
                       streak=jnp.zeros([], jnp.int32), step=jnp.full([], -1, jnp.int32))
    return RunState(params=params, opt=opt.init(params), step=jnp.zeros([], jnp.int32),
                    diverged=jnp.full([], -1, jnp.int32), data=data, noise_key=noise_key,
                    grok=grok)

  @staticmethod
  def _params_and_split(task: Task, seed):
    k_split, k_params = jax.random.split(jax.random.key(seed))
    _, state = nnx.split(task.make_model(nnx.Rngs(params=k_params)))
    return nnx.to_pure_dict(state), task.problem_def.split(k_split)

  def _padded(self, q: int, seed) -> tuple[dict, PaddedData]:
    """The parameters and data of a size-q run, zero-padded to the Task's largest size:
    the train set as index arrays with a weight per example, the full set with train and
    test masks, the mask of the run's classes, and `which` (its index in Task.sizes)."""
    t, tq = self.task, self.task.of_size(q)
    params, split = self._params_and_split(tq, seed)
    params = {k: jnp.pad(v, [(0, n - m) for n, m in zip(self.shapes[k], v.shape)])
              for k, v in params.items()}
    big = [t.of_size(r).problem_def for r in t.sizes]
    n_tr, n_all = max(b.n_train for b in big), max(b.n_total for b in big)
    prob = tq.problem_def
    pad = lambda x, n: jnp.pad(x, (0, n - x.shape[0]))
    (a, b), y = prob.train_set(split)
    (ea, eb), ey, is_train = prob.eval_set(split)
    real = jnp.arange(n_all) < prob.n_total
    return params, PaddedData(
        train=(pad(a, n_tr), pad(b, n_tr)), train_y=pad(y, n_tr),
        train_w=(jnp.arange(n_tr) < prob.n_train).astype(t.dtype),
        eval=(pad(ea, n_all), pad(eb, n_all)), eval_y=pad(ey, n_all),
        eval_train=pad(is_train, n_all) & real, eval_test=~pad(is_train, n_all) & real,
        classes=jnp.arange(t.p) < q, which=jnp.asarray(t.sizes.index(q), jnp.int32))

  def _logits(self, model, inputs, data, temperature=None):
    logits = model(*inputs)
    if self.task.temperature and temperature is not None:  # the run's output temperature
      logits = logits / temperature
    if self.task.sizes is not None:  # classes beyond the run's own modulus do not exist
      logits = jnp.where(data.classes, logits, -jnp.inf)
    return logits

  def loss(self, params, inputs, y, layernorm=None, data=None, temperature=None):
    """The Task's mean training loss (`Task.loss`) of the logits over `temperature` (read
    under Task(temperature=True)); under a padded Task (`data` given) over the run's own
    examples and classes."""
    if data is None or self.task.sizes is None:
      logits = self._logits(self.model(params, layernorm), inputs, data, temperature)
      return losses.per_example(self.task.loss, logits, y).mean()
    logits = self._logits(self.model(params, layernorm), inputs, data, temperature)
    ce = losses.per_example(self.task.loss, logits, y)
    return jnp.sum(ce * data.train_w) / jnp.sum(data.train_w)

  def train_set(self, data):
    if self.task.sizes is not None:
      return data.train, data.train_y
    return self.problem.train_set(data)

  def group_mask(self, params, group: jax.Array):
    """Per leaf, a traced bool: a weight matrix in WEIGHT_GROUPS[group] ("all": every one);
    False (a Python bool) on the vectors."""
    def member(name):
      hits = [group == WEIGHT_GROUPS.index(g) for g, names in self.groups.items() if name in names]
      return functools.reduce(jnp.logical_or, hits, group == 0)
    return {name: member(name) if jnp.ndim(leaf) >= 2 else False for name, leaf in params.items()}

  def check_groups(self, runs: Runs) -> None:
    """Raise ValueError if a run measures, holds or kicks a group this model lacks."""
    used = set(runs.norm_group.tolist()) | set(runs.kick_group[runs.t_kick < NEVER].tolist())
    for g in sorted(used - {0}):
      if not self.groups.get(WEIGHT_GROUPS[g]):
        raise ValueError(f"the {self.task.arch} model has no weight group "
                         f"{WEIGHT_GROUPS[g]!r} (its groups: {', '.join(self.groups)})")

  def step(self, state, hp):
    """One optimiser step of one run: state (params, opt_state, data, step) and its
    hyperparameters `hp` in, the next state out; pure, so vmap and jit wrap it."""
    inputs, y = self.train_set(state.data)
    kick_mask = self.group_mask(state.params, hp.kick_group)
    norm_mask = self.group_mask(state.params, hp.norm_group)
    at_init = (state.step == 0) & (hp.t_kick == 0)  # a kick at step 0: initial weights
    params = jax.tree.map(lambda p, m: p if m is False else
                          jnp.where(at_init & m, p * hp.kick.astype(p.dtype), p),
                          state.params, kick_mask)
    loss, grads = jax.value_and_grad(self.loss)(params, inputs, y, hp.layernorm, state.data,
                                                hp.temperature)
    opt = paper_optimizer(hp.lr, hp.wd, hp.target_norm, hp.t_int, hp.t_stop,
                          hp.kick, hp.t_kick, kick_mask, norm_mask,
                          optimizer=self.task.optimizer, grad=self.task.grad_transform,
                          grad_options=self._grad_options(hp),
                          momentum=hp.momentum if self.task.momentum else None,
                          adamw_leaves=self.adamw_leaves)
    updates, opt_state = opt.update(grads, state.opt, params)
    new_params = optax.apply_updates(params, updates)
    if self.task.noise:
      new_params = self._add_noise(new_params, state, hp.noise)
    finite = jnp.isfinite(loss) & jnp.isfinite(weight_norm(new_params, jax.tree.map(lambda _: True, new_params)))
    live = (state.step < hp.budget) & (state.diverged < 0)
    keep = live & finite
    pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, old)
    return state._replace(params=pick(new_params, params), opt=pick(opt_state, state.opt),
                          step=state.step + keep.astype(jnp.int32),
                          diverged=jnp.where(live & ~finite, state.step, state.diverged))

  def _grad_options(self, hp: HParams) -> dict[str, Any] | None:
    """The run's own values of its gradient transform's options (Grokfast's alpha and
    lambda; NaN: the Task's), read only under a Grokfast Task."""
    if not self.task.grokfast:
      return None
    return {"alpha": hp.grokfast_alpha, "lamb": hp.grokfast_lamb}

  def _add_noise(self, params, state, k):
    """params + k * 2^-24 * |theta| * N(0, 1), one draw per parameter and step from the
    run's noise key folded with the step: float32's relative rounding scale, applied to
    the stored parameters, where rounding acts on them (after the clamp and the kick)."""
    key = jax.random.fold_in(jax.random.wrap_key_data(state.noise_key), state.step)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    scale = k * losses.FLOAT32_HALF_ULP
    return jax.tree.unflatten(treedef, [
        x + (scale * jnp.abs(x) * jax.random.normal(kk, x.shape, x.dtype)).astype(x.dtype)
        for x, kk in zip(leaves, keys)])

  def evaluate(self, state, hp=None) -> dict[str, jax.Array]:
    """Accuracy, loss, ||W||, softmax collapse and the float32 floor of one run on its
    whole train and test set, and the problem's own metrics (a modular problem's Fourier
    Gini). The loss curves are the Task's loss; `floor` is the fraction of train examples
    whose correct-class gradient is exactly 0 in the run's dtype (`grokjax.engine.losses`),
    `floor_f32` the fraction whose off-class softmax mass is below 2^-24 (where a float32
    sum that adds that mass to the 1 at once rounds; a float32 run floors there or
    earlier, `grokjax.engine.losses`), read in any dtype; `floor_err` the mean relative
    error of the train examples' correct-class gradients (0: exact, 1: all floored), which
    rises before the first example is at the floor.
    `collapse` is another, far later quantity: a margin of 126 ln 2 (`softmax_collapsed`)."""
    prob, data = self.problem, state.data
    model = self.model(state.params, None if hp is None else hp.layernorm)
    if self.task.sizes is None:
      inputs, y, is_train = prob.eval_set(data)
      is_test = ~is_train
      n_tr, n_te = prob.n_train, prob.n_test
      metrics = prob.metrics(model)
    else:
      inputs, y, is_train, is_test = data.eval, data.eval_y, data.eval_train, data.eval_test
      n_tr, n_te = jnp.sum(is_train), jnp.sum(is_test)
      metrics = jax.lax.switch(data.which, [
          lambda params, q=q: self.task.of_size(q).problem_def.metrics(self.model(params))
          for q in self.task.sizes], state.params)
    logits = self._logits(model, inputs, data, None if hp is None else hp.temperature)
    ce = losses.per_example(self.task.loss, logits, y)
    correct = (jnp.argmax(logits, -1) == y).astype(logits.dtype)
    is_train, is_test = is_train.astype(logits.dtype), is_test.astype(logits.dtype)
    one_hot = softmax_collapsed(logits).astype(logits.dtype)
    return dict(
        train_acc=jnp.sum(correct * is_train) / n_tr,
        test_acc=jnp.sum(correct * is_test) / n_te,
        train_loss=jnp.sum(ce * is_train) / n_tr,
        test_loss=jnp.sum(ce * is_test) / n_te,
        norm=weight_norm(state.params, None if hp is None else
                         self.group_mask(state.params, hp.norm_group)),
        collapse=jnp.sum(one_hot * is_train) / n_tr,
        floor=jnp.sum(losses.at_floor(self.task.loss, logits, y).astype(logits.dtype)
                      * is_train) / n_tr,
        floor_f32=jnp.sum(losses.below_float32_floor(logits, y).astype(logits.dtype)
                          * is_train) / n_tr,
        floor_err=jnp.sum(losses.correct_class_error(self.task.loss, logits, y)
                          * is_train) / n_tr,
        **metrics,
    )

  def _chunk_one(self, state, hp, n_evals: int):
    ev = self.task.eval_every
    first = None if self.grok is None else state.step // ev  # this chunk's first column

    def block(state, j):
      state = jax.lax.fori_loop(0, ev, lambda _, s: self.step(s, hp), state)
      record = self.evaluate(state, hp)
      if first is not None:
        state = self.watch_grok(state, record["test_acc"], first + j, hp)
      return state, record
    js = None if first is None else jnp.arange(n_evals, dtype=jnp.int32)
    return jax.lax.scan(block, state, js, length=n_evals)

  def watch_grok(self, state, test_acc, col, hp):
    """The state's `grok` after the evaluation of curve column `col`. Only the columns the
    host keeps count (those within the budget: a chunk may run past it, frozen); a
    diverged run's frozen evaluations up to its budget are kept, and count, alike."""
    g, ev = state.grok, self.task.eval_every
    open_ = (g.streak < self.grok.persist) & (col * ev < hp.budget)
    above = test_acc >= self.grok_level  # NaN: never above
    start = open_ & above & (g.streak == 0)
    return state._replace(grok=GrokState(
        params=jax.tree.map(lambda new, old: jnp.where(start, new, old), state.params,
                            g.params),
        streak=jnp.where(open_, jnp.where(above, g.streak + 1, 0), g.streak),
        step=jnp.where(start, (col + 1) * ev, g.step)))

  def chunk(self, n_evals: int, vmap_width: int | None = None, mesh: Mesh | None = None
            ) -> Callable:
    """Jitted fn(state, hp) -> (state, records[runs, n_evals], (step, diverged)) for a
    batch of runs; the state argument is donated.

    Args:
      n_evals: evaluations per chunk (eval_every steps each).
      vmap_width: runs vectorised together; the program maps over groups of this many
        in sequence (`lax.map`), still one compiled call. None vectorises all runs.
      mesh: a Mesh with a "runs" axis; each device trains its own slice of the run axis
        (`jax.shard_map`: no device ever touches another's runs). None: one device.
    """
    key = (n_evals, vmap_width, mesh)
    if key not in self._chunks:
      per_run = functools.partial(self._chunk_one, n_evals=n_evals)
      if vmap_width is None:
        fn = jax.vmap(per_run)
      elif vmap_width == 1:
        fn = lambda s, h: jax.lax.map(lambda sh: self._skip_idle(per_run, *sh), (s, h))
      else:
        fn = lambda s, h: jax.lax.map(lambda sh: per_run(*sh), (s, h), batch_size=vmap_width)
      if mesh is not None and mesh.size > 1:
        spec = PartitionSpec("runs")
        fn = jax.shard_map(fn, mesh=mesh, in_specs=(spec, spec), out_specs=(spec, spec),
                           check_vma=False)  # runs never talk to each other
      with_status = lambda s, h, fn=fn: self._with_status(*fn(s, h))
      self._chunks[key] = jax.jit(self.precise(with_status), donate_argnums=0)
    return self._chunks[key]

  @staticmethod
  def _with_status(state, records):
    # Step and divergence as outputs of their own: the state is donated to the next chunk,
    # which may be queued before the host reads these.
    return state, records, (state.step + 0, state.diverged + 0)

  @staticmethod
  def _skip_idle(per_run: Callable, state, hp):
    """per_run for a run with steps left; a padding lane or a run already at its budget
    is returned as it is, without computing (one run at a time, `lax.cond` really skips).
    The records of a skipped lane are zeros and never read."""
    live = (state.step < hp.budget) & (state.diverged < 0) & hp.active
    idle = lambda: (state, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype),
                                        jax.eval_shape(per_run, state, hp)[1]))
    return jax.lax.cond(live, lambda: per_run(state, hp), idle)

  def precise(self, fn: Callable) -> Callable:
    """fn traced under the Task's matmul precision."""
    def wrapped(*args):
      with jax.default_matmul_precision(self.task.matmul_precision):
        return fn(*args)
    return wrapped


def program(task: Task, grok: GrokRule | None = None) -> Program:
  """The (cached) compiled program of a Task; with `grok`, one that also keeps each run's
  parameters at its T_grok under that rule. `program(task)` and `program(task, None)` are
  the same object."""
  return _program(task, grok)


@functools.lru_cache(maxsize=None)
def _program(task: Task, grok: GrokRule | None) -> Program:
  return Program(task, grok)

