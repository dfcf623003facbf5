import os

import chex
import jax
import numpy as np
import pytest

from grokjax.engine.optim import NEVER
from grokjax.engine.spec import Runs, Task
from grokjax.engine.train import train

TINY = Task(p=13, d=8, hidden=16, eval_every=5)
# Tests that train one model run on one xdist worker (pytest's --dist loadgroup), so its
# programs compile once for all of them instead of once per worker.
SHARES_TINY = pytest.mark.xdist_group("tiny")
SHARES_TRANSFORMER = pytest.mark.xdist_group("transformer")
SHARES_PADDED = pytest.mark.xdist_group("padded")
SHARES_SMOKE = pytest.mark.xdist_group("smoke")  # see tests/experiments/test_experiments.py
# Task(p=31, d=16, hidden=64, frac=0.5, eval_every=10), batches of 8, chunks of 100 steps
SHARES_P31 = pytest.mark.xdist_group("p31")


def _smoke_transformer() -> Task:
  """The pinned_norm smoke preset's transformer at p = 23 (d 16, 4 heads, MLP 32), which
  test_experiments trains in chunks of 20 steps (group "transformer")."""
  from grokjax import cli
  return cli.parse("pinned_norm", ["--preset", "smoke", "--arch", "transformer"])[0].task(23)


def _grid(budget=60):
  return Runs(seed=[0, 1, 2, 0], lr=[1e-2, 3e-3, 1e-2, 5e-3], wd=1.0,
              target_norm=[np.nan, np.nan, 6.0, 8.0], t_int=[NEVER, NEVER, 10, 20],
              budget=budget)


def _close(a, b):
  keys = ("train_loss", "test_loss", "norm", "train_acc", "test_acc")
  chex.assert_trees_all_close({k: a.curves[k] for k in keys}, {k: b.curves[k] for k in keys},
                              rtol=1e-5, atol=1e-6)


@SHARES_TINY
def test_batch_equals_each_run_alone():
  runs = _grid()
  batch = train(TINY, runs, chunk_steps=20, retire_margin=None, progress=False, vmap_width=None)
  for i in range(len(runs)):
    alone = train(TINY, runs.take([i]), chunk_steps=20, retire_margin=None, progress=False)
    for k in ("train_loss", "norm", "test_acc"):
      np.testing.assert_allclose(batch.curves[k][i], alone.curves[k][0], rtol=1e-5, atol=1e-6)


@SHARES_TINY
def test_same_config_same_result_twice():
  a = train(TINY, _grid(), chunk_steps=20, progress=False)
  b = train(TINY, _grid(), chunk_steps=20, progress=False)
  chex.assert_trees_all_equal(a.curves, b.curves)


@SHARES_TINY
def test_clamp_holds_the_norm_in_the_engine():
  res = train(TINY, _grid(), chunk_steps=20, retire_margin=None, progress=False)
  steps = res.steps
  np.testing.assert_allclose(res.curves["norm"][2, steps >= 10], 6.0, rtol=1e-5)
  np.testing.assert_allclose(res.curves["norm"][3, steps >= 20], 8.0, rtol=1e-5)
  assert abs(res.curves["norm"][3, 0] - 8.0) > 0.1  # before t_int the norm moves freely


@SHARES_TINY
def test_matched_counterfactual_same_start_for_every_arm():
  # Seed 0 as a free run and as a clamp run whose clamp starts after the budget: the
  # init and split ignore the arm and the held norm, so the two curves are identical.
  runs = Runs(seed=[0, 0], lr=1e-2, wd=1.0, target_norm=[np.nan, 9.0], t_int=[NEVER, 20],
              budget=15)
  res = train(TINY, runs, chunk_steps=20, retire_margin=None, progress=False)
  for k in res.curves:
    np.testing.assert_array_equal(res.curves[k][0], res.curves[k][1])


@SHARES_TINY
def test_seed_streams_are_independent_samples_with_matched_cells_inside():
  # Seed 0 of stream "a" as a free run and as a late clamp starts identically (the matched
  # counterfactual holds inside a stream); seed 0 of stream "b" is another draw.
  runs = Runs(seed=[0, 0, 0], lr=1e-2, wd=1.0, target_norm=[np.nan, 9.0, np.nan],
              t_int=[NEVER, 20, NEVER], budget=15, stream=["a", "a", "b"])
  res = train(TINY, runs, chunk_steps=20, retire_margin=None, progress=False)
  np.testing.assert_array_equal(res.curves["train_loss"][0], res.curves["train_loss"][1])
  assert not np.array_equal(res.curves["train_loss"][0], res.curves["train_loss"][2])
  assert TINY.init_seed(1.0, 0, "a") != TINY.init_seed(1.0, 0, "b") != TINY.init_seed(1.0, 0)
  assert TINY.init_seed(1.0, 0, "") == TINY.init_seed(1.0, 0)  # the shared legacy stream


@SHARES_P31
def test_per_run_budgets_and_early_exit_match_lockstep():
  budget = [300, 800, 800, 500, 800]
  runs = Runs(seed=[0, 1, 2, 3, 4], lr=2e-2, wd=1.0, target_norm=np.nan, t_int=NEVER,
              budget=budget)
  task = Task(p=31, d=16, hidden=64, frac=0.5, eval_every=10)
  lock = train(task, runs, chunk_steps=100, retire_margin=None, progress=False)
  fast = train(task, runs, chunk_steps=100, retire_margin=0, progress=False)
  np.testing.assert_array_equal(lock.last_step, budget)
  a, b = lock.reduce(), fast.reduce()
  assert a.grokked.any(), "the grid should grok somewhere for this test to mean anything"
  for k in ("t_mem", "t_grok", "grokked", "censored"):
    np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
  np.testing.assert_allclose(a.norm_at_grok, b.norm_at_grok, rtol=1e-5)
  assert (fast.last_step[a.grokked] < lock.last_step[a.grokked]).any()
  for k in ("train_loss", "norm", "test_acc"):  # the curves agree wherever both have them
    seen = np.isfinite(fast.curves[k])
    np.testing.assert_allclose(fast.curves[k][seen], lock.curves[k][seen], rtol=1e-5, atol=1e-6)


def test_bad_grid_rejected():
  with pytest.raises(ValueError, match="held norm"):
    Runs(seed=[0], lr=1e-3, wd=1.0, target_norm=np.nan, t_int=10, budget=10)
  with pytest.raises(ValueError, match="learning rates"):
    Runs.free([0], 0.0, 1.0, 10)
  with pytest.raises(ValueError, match="arch"):
    Task(p=11, arch="rnn")


@SHARES_SMOKE
def test_free_run_groks_at_a_common_norm():
  """The paper's first claim at CPU scale: every seed groks, ||W|| at T_grok varies little."""
  task = Task(p=47, d=32, hidden=128, eval_every=10)  # the README's library example's Task
  res = train(task, Runs.free(np.arange(4), 2e-2, 1.0, 3000), retire_margin=0, progress=False)
  out = res.reduce()
  assert out.grokked.all(), out.t_grok
  assert (out.t_mem < out.t_grok).all()
  w = out.norm_at_grok
  assert np.std(w) / np.mean(w) <= 0.03, w


@SHARES_TINY
def test_sequential_lanes_equal_vmapped_lanes():
  """The CPU default maps runs one by one inside the program; it must match full vmap."""
  runs = _grid()
  wide = train(TINY, runs, chunk_steps=20, retire_margin=None, progress=False, vmap_width=None)
  for width in (1, 2):
    narrow = train(TINY, runs, chunk_steps=20, retire_margin=None, progress=False,
                   vmap_width=width)
    _close(wide, narrow)


def _advance(prog, state, runs, evals):
  import jax.numpy as jnp
  from grokjax.engine.spec import hparams
  hp = jax.tree.map(jnp.asarray, hparams(runs, np.dtype("float32")))
  state, records, _ = prog.chunk(evals, 1)(state, hp)
  return state, records


def _as_train_calls(prog, runs):
  """(init, hp, chunk) as `train` calls them for these runs on one CPU device: a batch at
  the floor of 8 lanes (lanes past the runs repeat run 0 and are skipped), runs one by one,
  4 evaluations a chunk. For TINY these are the programs the tiny group's tests compile;
  under a padded Task (Task.sizes), those of the padded-program test."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  from grokjax.engine.runtime import batch_floor
  from grokjax.engine.spec import hparams
  from grokjax.engine.train import lane_layout
  task, devices = prog.task, jax.devices()[:1]
  mesh = Mesh(np.array(devices), ("runs",))
  sharding = NamedSharding(mesh, PartitionSpec("runs"))
  lanes, pad = lane_layout(np.arange(len(runs)), batch_floor(devices, one_by_one=True), 1)
  sizes = np.where(runs.size == 0, task.p, runs.size)
  seeds = np.array([task.of_size(q).init_seed(w, s, str(st)) for q, w, s, st in
                    zip(sizes, runs.wd, runs.seed, runs.stream)], np.uint32)
  which = np.searchsorted(np.array(task.sizes or (task.p,)), sizes).astype(np.int32)
  init = lambda: prog.init_on(sharding)(seeds[lanes], which[lanes])
  hp = jax.device_put(hparams(runs.take(lanes), np.dtype("float32"))._replace(active=~pad),
                      sharding)
  return init, hp, prog.chunk(4, 1, mesh)


@SHARES_TINY
def test_kick_at_step_0_equals_training_from_scaled_initial_weights():
  from grokjax.engine.program import program
  prog = program(TINY)
  base = Runs(seed=[0], lr=1e-2, wd=1.0, target_norm=np.nan, t_int=NEVER, budget=40)
  kicked = Runs(seed=[0], lr=1e-2, wd=1.0, target_norm=np.nan, t_int=NEVER, budget=40,
                kick=1.5, t_kick=0)
  init, hp, chunk = _as_train_calls(prog, base)
  _, hp_kicked, _ = _as_train_calls(prog, kicked)

  def curves(state, hp):  # run 0's 8 evaluations (40 steps), two chunks
    state, first, _ = chunk(state, hp)
    _, second, _ = chunk(state, hp)
    return {k: np.concatenate([first[k][:1], second[k][:1]], axis=1) for k in first}
  scaled = init()
  scaled = scaled._replace(params={k: v * 1.5 if v.ndim >= 3 else v
                                   for k, v in scaled.params.items()})
  ref = curves(scaled, hp)
  got = curves(init(), hp_kicked)
  chex.assert_trees_all_close(got, ref, rtol=1e-6)
  assert float(ref["norm"][0, 0]) > 1.3 * float(chunk(init(), hp)[1]["norm"][0, 0])


@SHARES_TINY
def test_one_shot_rescale_and_group_kick_in_the_engine():
  import jax.numpy as jnp
  from grokjax.engine.spec import KICK_GROUPS
  from grokjax.engine.program import program
  prog = program(TINY)
  seeds = jnp.array([TINY.init_seed(1.0, 0)] * 3, jnp.uint32)
  runs = Runs(seed=[0, 0, 0], lr=1e-2, wd=1.0, target_norm=[np.nan, 5.0, np.nan],
              t_int=[NEVER, 10, NEVER], t_stop=[NEVER, 10, NEVER], budget=40,
              kick=[1.0, 1.0, 0.8], t_kick=[NEVER, NEVER, 10],
              kick_group=[0, 0, KICK_GROUPS.index("embedding")])
  state, rec = _advance(prog, prog.init(seeds), runs, 2)  # 10 steps, the interventions land
  np.testing.assert_allclose(rec["norm"][1, 1], 5.0, rtol=1e-5)   # rescaled at step 10
  np.testing.assert_allclose(state.params["embed"][2], 0.8 * state.params["embed"][0], rtol=1e-6)
  np.testing.assert_allclose(state.params["w1"][2], state.params["w1"][0], rtol=1e-6)
  np.testing.assert_allclose(rec["norm"][:, 0], rec["norm"][0, 0], rtol=1e-6)  # identical before
  state, rec = _advance(prog, state, runs, 2)
  assert abs(float(rec["norm"][1, -1]) - 5.0) > 1e-3   # after the one-shot, free again


def test_padding_is_spread_so_every_device_trains_as_many_runs():
  from grokjax.engine.train import batch_size, lane_layout
  for live in (1, 5, 36, 80, 97):
    for ndev in (1, 2, 4):
      size = batch_size(live, ndev, 1 << 62)
      take, pad = lane_layout(np.arange(100, 100 + live), size, ndev)
      per_device = (~pad).reshape(ndev, -1).sum(1)
      assert per_device.max() - per_device.min() <= 1
      assert sorted(take[~pad]) == list(range(100, 100 + live))


def _mixed_grid():
  # budgets that end inside chunks, runs that retire by grokking, one that diverges
  return Runs(seed=[0, 1, 2, 3, 4, 5], lr=[2e-2] * 5 + [1e38], wd=1.0,
              target_norm=[np.nan] * 3 + [9.0, 10.0, np.nan], t_int=[NEVER] * 3 + [50, 60, NEVER],
              budget=[300, 800, 800, 500, 800, 400])


@SHARES_P31
def test_overlapped_dispatch_equals_plain_loop():
  task = Task(p=31, d=16, hidden=64, frac=0.5, eval_every=10)
  rates = []
  plain = train(task, _mixed_grid(), chunk_steps=100, retire_margin=0, progress=False,
                overlap=False)
  ahead = train(task, _mixed_grid(), chunk_steps=100, retire_margin=0, progress=False,
                overlap=True, on_rate=lambda *a: rates.append(a))
  assert plain.diverged_step[5] >= 0 and plain.last_step[2] < 800  # diverged; retired early
  np.testing.assert_array_equal(plain.last_step, ahead.last_step)
  np.testing.assert_array_equal(plain.diverged_step, ahead.diverged_step)
  for k in plain.curves:
    np.testing.assert_array_equal(plain.curves[k], ahead.curves[k], err_msg=k)
  assert ahead.lane_steps > plain.lane_steps  # the chunks queued ahead of a retirement
  assert len(rates) == 1 and rates[0][0] > 0 and rates[0][1]  # its own rate, once


@SHARES_P31
def test_overlapped_checkpoint_resume_equals_uninterrupted(tmp_path, monkeypatch):
  import grokjax.engine.checkpoints as saving
  import grokjax.engine.train as engine
  task = Task(p=31, d=16, hidden=64, frac=0.5, eval_every=10)
  kw = dict(chunk_steps=100, retire_margin=0, progress=False)
  whole = train(task, _mixed_grid(), overlap=False, **kw)
  real_to_host = engine.to_host

  class Killed(Exception):
    pass

  # Reads of records alternate with checkpoint saves; killed at several points, some after
  # a compaction of a batch whose next chunk was already queued.
  for kill_at in (5, 9, 13):
    reads = [0]

    def dying_to_host(tree):
      reads[0] += 1
      if reads[0] == kill_at:
        raise Killed
      return real_to_host(tree)

    folder = str(tmp_path / str(kill_at))
    for module in (engine, saving):  # the loop's reads and the checkpoints' saves
      monkeypatch.setattr(module, "to_host", dying_to_host)
    with pytest.raises(Killed):
      train(task, _mixed_grid(), checkpoint=folder, checkpoint_every_s=0, overlap=True, **kw)
    for module in (engine, saving):
      monkeypatch.setattr(module, "to_host", real_to_host)
    assert any(name.isdigit() for name in os.listdir(folder))  # a checkpoint to resume from
    resumed = train(task, _mixed_grid(), checkpoint=folder, checkpoint_every_s=0, overlap=True,
                    **kw)
    np.testing.assert_array_equal(whole.last_step, resumed.last_step)
    for k in whole.curves:
      np.testing.assert_array_equal(whole.curves[k], resumed.curves[k], err_msg=f"{k} {kill_at}")


@pytest.mark.parametrize("arch", [pytest.param("mlp", marks=SHARES_TINY),
                                  pytest.param("transformer", marks=SHARES_TRANSFORMER)])
def test_per_run_layernorm_switch_equals_each_variant_alone(arch):
  import dataclasses
  # each variant alone is the model another test trains (TINY; the smoke preset's
  # transformer in chunks of 20 steps), so its compiled program is shared. 20 steps: the
  # switch and the variant are programs of their own, equal to rounding, which later steps
  # amplify
  base = TINY if arch == "mlp" else _smoke_transformer()
  mixed = Runs(seed=[0, 0, 1, 1], lr=1e-2, wd=1.0, target_norm=[np.nan, np.nan, 6.0, 6.0],
               t_int=[NEVER, NEVER, 10, 10], budget=20, layernorm=[False, True, False, True])
  both = train(dataclasses.replace(base, layernorm="per_run"), mixed, chunk_steps=20,
               retire_margin=None, progress=False)
  for ln, rows in ((False, [0, 2]), (True, [1, 3])):
    alone = train(dataclasses.replace(base, layernorm=ln),
                  dataclasses.replace(mixed.take(rows), layernorm=False), chunk_steps=20,
                  retire_margin=None, progress=False)
    for k in alone.curves:
      np.testing.assert_allclose(both.curves[k][rows], alone.curves[k], rtol=1e-5, atol=1e-6,
                                 err_msg=f"{k} layernorm={ln}")
  # the two variants really differ, and a switch needs a per-run Task
  assert not np.allclose(both.curves["train_loss"][0], both.curves["train_loss"][1])
  with pytest.raises(ValueError, match="per_run"):
    train(base, mixed, chunk_steps=20, progress=False)


def _padded_grid():
  return Runs(seed=[0, 1, 0, 1], lr=1e-2, wd=1.0, target_norm=[np.nan, 6.0, np.nan, 7.0],
              t_int=[NEVER, 10, NEVER, 10], budget=[40, 40, 30, 40], size=[13, 13, 17, 17])


@SHARES_PADDED
def test_moduli_padded_into_one_program_equal_each_alone():
  import dataclasses
  big = Task(p=17, d=8, hidden=16, eval_every=5, sizes=(13, 17))
  runs = _padded_grid()
  both = train(big, runs, chunk_steps=20, retire_margin=None, progress=False)
  for q, rows in ((13, [0, 1]), (17, [2, 3])):
    alone = train(big.of_size(q), dataclasses.replace(runs.take(rows), size=0), chunk_steps=20,
                  retire_margin=None, progress=False)
    np.testing.assert_array_equal(both.last_step[rows], alone.last_step)
    for k in alone.curves:
      np.testing.assert_allclose(both.curves[k][rows], alone.curves[k], rtol=1e-5, atol=1e-6,
                                 err_msg=f"{k} p={q}")
  with pytest.raises(ValueError, match="not among"):
    train(big, dataclasses.replace(runs, size=11), progress=False)
  with pytest.raises(ValueError, match="MLP"):
    Task(p=17, d=8, hidden=16, arch="transformer", sizes=(13, 17))


@SHARES_PADDED
def test_padded_weights_and_moments_stay_exactly_zero():
  # the grid and the compiled programs of the test above: init and one chunk as train calls
  # them (one device, runs mapped one by one), so nothing compiles again
  from grokjax.engine.program import program
  big = Task(p=17, d=8, hidden=16, eval_every=5, sizes=(13, 17))
  prog = program(big)
  init, hp, chunk = _as_train_calls(prog, _padded_grid())  # runs 0, 1: size 13 of 17
  state, _, _ = chunk(init(), hp)
  assert np.asarray(state.step)[:4].tolist() == [20, 20, 20, 20]
  adam = state.opt[0][0]  # (AdamW chain, clamp, kick) -> AdamW (adam, decay, lr) -> adam
  for tree in (state.params, adam.mu, adam.nu):
    for name, rows in (("embed", np.s_[:2, 13:]), ("w2", np.s_[:2, 13:]), ("b2", np.s_[:2, 13:])):
      assert np.all(np.asarray(tree[name])[rows] == 0), name
  assert np.any(np.asarray(state.params["w2"])[:2, :13] != 0)
  assert np.all(np.asarray(state.params["w2"])[2:4] != 0)  # a size-17 run fills the program


@SHARES_TINY
def test_resuming_a_finished_checkpoint_never_wedges(tmp_path):
  # A kill between a phase's last checkpoint (every run finished) and its phase file: the
  # retry restores that state, trains nothing, and must not try to save the same step again.
  ckpt = str(tmp_path / "ck")
  runs = _grid(budget=40)
  first = train(TINY, runs, chunk_steps=20, retire_margin=None, progress=False,
                checkpoint=ckpt, checkpoint_every_s=0)
  assert any(name.isdigit() for name in os.listdir(ckpt))
  for _ in range(2):
    again = train(TINY, runs, chunk_steps=20, retire_margin=None, progress=False,
                  checkpoint=ckpt, checkpoint_every_s=0)
    for k in first.curves:
      np.testing.assert_array_equal(first.curves[k], again.curves[k])
    np.testing.assert_array_equal(first.last_step, again.last_step)


def test_group_clamp_matches_a_hand_written_reference():
  # One AdamW step, then the clamp of one weight group, the group chosen per run by a
  # traced index under vmap: the group's matrices land on ||group|| = target with one
  # factor, every other matrix keeps its plain AdamW update.
  import jax
  import jax.numpy as jnp
  import optax
  from grokjax.engine.optim import paper_optimizer
  from grokjax.engine.spec import WEIGHT_GROUPS
  from grokjax.engine.program import program
  task = Task(p=11, d=16, hidden=32, arch="transformer", heads=2, eval_every=1)
  prog = program(task)
  params = jax.tree.map(lambda x: x[0], prog.init(jnp.array([7], jnp.uint32)).params)
  grads = jax.tree.map(lambda x: jnp.cos(3.0 * x + 1.0), params)
  lr, wd, target = 1e-2, 1.0, 1.7
  groups = ["all", "output", "embedding", "mlp"]

  def one(g):
    opt = paper_optimizer(lr, wd, target, 1, clamp_mask=prog.group_mask(params, g))
    updates, _ = opt.update(grads, opt.init(params), params)
    return optax.apply_updates(params, updates)

  out = jax.jit(jax.vmap(one))(jnp.array([WEIGHT_GROUPS.index(g) for g in groups], jnp.int32))
  # the first Adam step by hand: mhat = g, vhat = g^2; decoupled decay on every matrix
  plain = {k: np.asarray(p) * (1 - lr * wd) - lr * np.asarray(g) / (np.abs(np.asarray(g)) + 1e-8)
           for k, p, g in zip(params, params.values(), grads.values())}
  members = {"all": list(params), "output": ["unembed"], "embedding": ["embed", "pos"],
             "mlp": ["w_in", "w_out"]}
  for i, g in enumerate(groups):
    names = members[g]
    factor = target / np.sqrt(sum(np.sum(plain[k].astype(np.float64) ** 2) for k in names))
    for k in params:
      want = plain[k] * factor if k in names else plain[k]
      np.testing.assert_allclose(np.asarray(out[k][i]), want, rtol=2e-5, atol=1e-6, err_msg=f"{g} {k}")


@SHARES_TRANSFORMER
def test_norm_group_is_measured_and_held_in_the_engine():
  # A run's norm curve is its group's norm; a clamp of the unembedding holds that norm
  # and leaves the total free; a clamp of the total holds the total.
  from grokjax.engine.spec import WEIGHT_GROUPS
  task = _smoke_transformer()
  out = WEIGHT_GROUPS.index("output")
  runs = Runs(seed=[0, 0, 0, 0], lr=1e-2, wd=1.0, target_norm=[np.nan, np.nan, 2.0, 5.0],
              t_int=[NEVER, NEVER, 10, 10], budget=40, norm_group=[out, 0, out, 0])
  res = train(task, runs, chunk_steps=20, retire_margin=None, progress=False)
  norm, steps = res.curves["norm"], res.steps
  # runs 0 and 1 are one training run (same seed, free) measured two ways
  assert np.all(norm[0] < norm[1]) and np.ptp(norm[0] / norm[1]) > 1e-3
  for i in (0, 1):
    np.testing.assert_array_equal(res.curves["train_loss"][i], res.curves["train_loss"][1])
  np.testing.assert_allclose(norm[2, steps >= 10], 2.0, rtol=1e-5)
  np.testing.assert_allclose(norm[3, steps >= 10], 5.0, rtol=1e-5)


def test_a_group_the_model_lacks_is_refused():
  from grokjax.engine.spec import WEIGHT_GROUPS
  runs = Runs(seed=[0], lr=1e-2, wd=1.0, target_norm=[3.0], t_int=[10], budget=20,
              norm_group=WEIGHT_GROUPS.index("attention"))
  with pytest.raises(ValueError, match="no weight group 'attention'"):
    train(TINY, runs, progress=False)


def _small_checkpointed_run(folder):
  runs = Runs(seed=np.arange(2), lr=1e-2, wd=1.0, target_norm=np.nan, t_int=NEVER, budget=60)
  return TINY, runs, train(TINY, runs, chunk_steps=20, checkpoint=folder, checkpoint_every_s=0,
                           progress=False)


@SHARES_TINY
def test_a_damaged_or_foreign_checkpoint_is_refused_in_one_line(tmp_path):
  """A checkpoint whose content no longer matches the SHA-256 saved with it (values changed
  where orbax still reads them), one whose files are damaged, and one made for another
  device count are each refused with one line, never resumed."""
  import orbax.checkpoint as ocp
  from grokjax.engine import checkpoints
  from grokjax.engine.state import LoopState
  folder = str(tmp_path / "ck")
  task, runs, first = _small_checkpointed_run(folder)
  again = train(task, runs, chunk_steps=20, checkpoint=folder, checkpoint_every_s=0,
                progress=False)  # an intact checkpoint resumes to the same result
  np.testing.assert_array_equal(first.curves["test_acc"], again.curves["test_acc"])
  manager = ocp.CheckpointManager(folder)
  step = manager.latest_step()
  tree = manager.restore(step)
  tree["state"][0] = np.asarray(tree["state"][0]) + 1e-3  # a silent change of the weights
  manager.save(step + 1, args=ocp.args.StandardSave(tree), force=True)
  manager.wait_until_finished()
  with pytest.raises(ValueError, match="damaged") as e:
    train(task, runs, chunk_steps=20, checkpoint=folder, checkpoint_every_s=0, progress=False)
  assert "\n" not in str(e.value) and folder in str(e.value)
  # bytes changed in its files: unreadable or damaged, one line either way. Every file is
  # hit (which one is largest varies, and bytes orbax never reads would change nothing).
  other = str(tmp_path / "ck2")
  _small_checkpointed_run(other)
  for data in (os.path.join(d, f) for d, _, fs in os.walk(other) for f in fs):
    raw = bytearray(open(data, "rb").read())
    raw[len(raw) // 2:len(raw) // 2 + 8] = bytes(8 * [0xA5])
    open(data, "wb").write(bytes(raw))
  with pytest.raises(ValueError, match="damaged|cannot be read") as e:
    train(task, runs, chunk_steps=20, checkpoint=other, checkpoint_every_s=0, progress=False)
  assert "\n" not in str(e.value)
  # made on 2 devices, resumed on 1: refused, naming both counts
  ck = checkpoints.Checkpoints(str(tmp_path / "ck3"), "00" * 32, n_devices=2)
  loop = LoopState(lanes=np.arange(2), pad=np.zeros(2, bool), live=np.ones(2, bool),
                               last_step=np.zeros(2, np.int64), diverged=-np.ones(2, np.int64),
                               curves={"norm": np.zeros((2, 3))}, elapsed=np.float64(0),
                               lane_steps=np.int64(0))
  ck.save(10, loop, [np.zeros(3, np.float32)])
  with pytest.raises(ValueError, match="made on 2 devices and this process has 1"):
    checkpoints.Checkpoints(str(tmp_path / "ck3"), "00" * 32, n_devices=1).restore()
  assert checkpoints.Checkpoints(str(tmp_path / "ck3"), "00" * 32, n_devices=2).restore() is not None


@SHARES_TINY
def test_a_resume_restores_without_orbax_warnings(tmp_path, caplog):
  import logging
  folder = str(tmp_path / "ck")
  task, runs, first = _small_checkpointed_run(folder)
  with caplog.at_level(logging.WARNING):
    again = train(task, runs, chunk_steps=20, checkpoint=folder, checkpoint_every_s=0,
                  progress=False)
  assert not [r for r in caplog.records if "could not be restored" in r.getMessage()]
  np.testing.assert_array_equal(first.last_step, again.last_step)


def test_a_sweep_result_of_the_wrong_shape_is_refused():
  """SweepResult checks the engine's output contract (chex): a curve per run and per
  evaluation, one last step per run."""
  from grokjax.engine.spec import SweepResult
  runs = Runs(seed=[0, 1], lr=1e-2, wd=1.0, target_norm=np.nan, t_int=NEVER, budget=20)
  steps = np.array([10, 20])
  ok = dict(curves={"norm": np.zeros((2, 2))}, last_step=np.array([20, 20]),
            diverged_step=np.array([-1, -1]))
  SweepResult(TINY, runs, steps, **ok)
  with pytest.raises(AssertionError):
    SweepResult(TINY, runs, steps, **dict(ok, curves={"norm": np.zeros((2, 3))}))
  with pytest.raises(AssertionError):
    SweepResult(TINY, runs, steps, **dict(ok, last_step=np.array([20])))


@SHARES_P31
def test_a_trajectory_is_kept_every_n_steps_resumes_and_changes_no_curve(tmp_path, monkeypatch):
  """keep_params="every:N": every run's parameters at N, 2N, ... up to the step it stopped
  (their norm is its norm curve there; a clamp run's is its held norm after t_int), the same
  curves as a run that keeps nothing, and, killed and resumed, the same trajectory."""
  import jax.numpy as jnp
  import grokjax.engine.train as engine
  from grokjax.problems.models import weight_norm
  task = Task(p=31, d=16, hidden=64, frac=0.5, eval_every=10)
  kw = dict(chunk_steps=100, retire_margin=0, progress=False, overlap=False)
  plain = train(task, _mixed_grid(), **kw)
  kept = train(task, _mixed_grid(), keep_params="every:50", **kw)
  np.testing.assert_array_equal(plain.last_step, kept.last_step)  # retired at the same steps
  np.testing.assert_array_equal(plain.diverged_step, kept.diverged_step)
  sane = plain.diverged_step < 0  # a diverged run's records past its divergence mean nothing
  assert sane.sum() == 5
  for k in plain.curves:
    np.testing.assert_array_equal(plain.curves[k][sane], kept.curves[k][sane], err_msg=k)
  np.testing.assert_array_equal(kept.trajectory_steps, np.arange(50, 801, 50))
  runs = _mixed_grid()
  for i in range(len(runs)):
    for j, step in enumerate(kept.trajectory_steps):
      leaves = {k: v[i, j] for k, v in kept.trajectory.items()}
      if step > kept.last_step[i]:
        assert all(np.isnan(v).all() for v in leaves.values())  # past where it stopped
        continue
      if kept.diverged_step[i] >= 0:
        continue
      norm = float(weight_norm({k: jnp.asarray(v) for k, v in leaves.items()}))
      assert norm == pytest.approx(kept.curves["norm"][i, kept.steps == step][0], rel=1e-5)
      if np.isfinite(runs.target_norm[i]) and step >= runs.t_int[i]:
        assert norm == pytest.approx(runs.target_norm[i], rel=1e-5)
  assert kept.params is not None  # the parameters at T_grok too

  class Killed(Exception):
    pass

  real, reads = engine.to_host, [0]

  def dying(tree):
    reads[0] += 1
    if reads[0] == 7:
      raise Killed
    return real(tree)

  folder = str(tmp_path / "ck")
  monkeypatch.setattr(engine, "to_host", dying)
  with pytest.raises(Killed):
    train(task, _mixed_grid(), keep_params="every:50", checkpoint=folder, checkpoint_every_s=0,
          **kw)
  monkeypatch.setattr(engine, "to_host", real)
  resumed = train(task, _mixed_grid(), keep_params="every:50", checkpoint=folder,
                  checkpoint_every_s=0, **kw)
  for k in kept.trajectory:
    np.testing.assert_array_equal(kept.trajectory[k], resumed.trajectory[k], err_msg=k)
  with pytest.raises(ValueError, match="multiple of eval_every"):
    train(task, _mixed_grid(), keep_params="every:55", **kw)


@SHARES_TINY
def test_a_damaged_checkpoint_is_refused_before_orbax_reads_it(tmp_path):
  """Bytes changed in the data files orbax reads last: refused by the SHA-256 of the files
  written beside them, so no read is left in flight; the process then exits with nothing
  on stderr but its own line (tensorstore's reads used to print "Event loop is closed"
  tracebacks at exit)."""
  import subprocess
  import sys
  folder = str(tmp_path / "ck")
  _small_checkpointed_run(folder)
  data = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
          if os.sep + "d" + os.sep in os.path.join(d, f)]
  assert data and any(f.startswith("sha256-") for f in os.listdir(folder))
  for path in data:
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 2:len(raw) // 2 + 8] = bytes(8 * [0xA5])
    open(path, "wb").write(bytes(raw))
  code = ("import sys, numpy as np\n"
          "from grokjax.engine.optim import NEVER\n"
          "from grokjax.engine.spec import Runs, Task\n"
          "from grokjax.engine.train import train\n"
          "runs = Runs(seed=np.arange(2), lr=1e-2, wd=1.0, target_norm=np.nan, t_int=NEVER, budget=60)\n"
          "try:\n"
          f"  train(Task(p=13, d=8, hidden=16, eval_every=5), runs, chunk_steps=20, checkpoint={folder!r},\n"
          "        checkpoint_every_s=0, progress=False)\n"
          "except ValueError as e:\n"
          "  print(e, file=sys.stderr); sys.exit(1)\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, GROKJAX_CPU_DEVICES="1"))
  assert proc.returncode == 1
  assert proc.stderr.strip().count("\n") == 0 and "damaged" in proc.stderr, proc.stderr[-2000:]


def test_a_checkpoint_that_cannot_be_written_is_one_oserror(tmp_path, monkeypatch):
  """orbax reports a full disk as its own kinds (tensorstore's RESOURCE_EXHAUSTED in a
  ValueError): `Checkpoints.save` turns it into one OSError line that says how to go on,
  which the command line prints as its one line (measured on a 600 KiB tmpfs)."""
  from grokjax.engine import checkpoints
  from grokjax.engine.state import LoopState
  ck = checkpoints.Checkpoints(str(tmp_path / "ck"), "00" * 32)

  def full(*args, **kwargs):
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "curves.floor/0.0" in OCDBT database\n'
                     "  more lines of tensorstore's own")
  monkeypatch.setattr(ck.manager, "save", full)
  loop = LoopState(lanes=np.arange(2), pad=np.zeros(2, bool), live=np.ones(2, bool),
                   last_step=np.zeros(2, np.int64), diverged=-np.ones(2, np.int64),
                   curves={"norm": np.zeros((2, 3))}, elapsed=np.float64(0), lane_steps=np.int64(0))
  with pytest.raises(OSError, match="could not be written .*RESOURCE_EXHAUSTED.*resumes") as e:
    ck.save(10, loop, [np.zeros(3, np.float32)])
  assert "\n" not in str(e.value)
