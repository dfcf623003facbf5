"""The optional extras: the censored fit checked against lifelines (`check`), the curves
exported to TensorBoard (`tensorboard`), and --save-params grok. A test whose package is
not installed is skipped."""

import os
import struct

import numpy as np
import pytest

from grokjax.analysis import fit
from grokjax.harness import io, results


def test_aft_fit_agrees_with_lifelines_lognormal_aft():
  """fit_aft_delay_law is the maximum of the censored log-normal likelihood lifelines'
  LogNormalAFTFitter maximises: slope, intercepts and sigma agree to 1e-5 (measured: 9e-7
  or closer), and the small rest is lifelines' own stopping rule: its parameters are no
  more likely than ours."""
  lifelines = pytest.importorskip("lifelines")
  import pandas as pd
  from scipy.stats import norm
  rng = np.random.default_rng(0)
  rho = np.tile(np.repeat([0.8, 0.9, 1.0, 1.1, 1.2], 20), 2)
  p = np.repeat([97, 113], 100)
  ln_t = np.where(p == 97, 1.0, 0.6) + 8.0 * rho + 0.4 * rng.normal(size=rho.size)
  budget = 15000.0  # about 30 % of the runs end censored at it, most of them at rho 1.2
  cens = np.exp(ln_t) > budget
  t = np.minimum(np.exp(ln_t), budget)
  ours = fit.fit_aft_delay_law(rho, t, cens, modulus=p, n_boot=0)
  data = pd.DataFrame(dict(T=t, E=~cens, rho=rho, p113=(p == 113).astype(float)))
  aft = lifelines.LogNormalAFTFitter().fit(data, "T", "E", formula="rho + p113")
  mu = aft.params_["mu_"]
  theirs = dict(alpha=mu["rho"], c97=mu["Intercept"], c113=mu["Intercept"] + mu["p113"],
                sigma=float(np.exp(aft.params_["sigma_"]["Intercept"])))
  mine = dict(alpha=ours["alpha"], c97=ours["intercepts"]["97"],
              c113=ours["intercepts"]["113"], sigma=ours["sigma"])
  assert 0.2 < cens.mean() < 0.4
  for k in mine:
    assert mine[k] == pytest.approx(theirs[k], abs=1e-5), k

  def loglik(q):
    z = (np.log(t) - q["alpha"] * rho - np.where(p == 97, q["c97"], q["c113"])) / q["sigma"]
    return (np.sum(norm.logpdf(z[~cens]) - np.log(q["sigma"])) + np.sum(norm.logsf(z[cens])))
  assert loglik(mine) >= loglik(theirs) - 1e-9


# ---------------------------------------------------------------- TensorBoard

def _folder(path) -> str:
  """A minimal finished results folder: config.json, runs.csv, curves.npz (three runs,
  the last one retired after two of its three evaluations)."""
  os.makedirs(path)
  rows = [dict(p=23, seed=s, arm=arm, rho=rho, lr=0.03, layernorm=False, t_grok=20,
               grokked=True, diverged=False, steps_trained=trained)
          for s, arm, rho, trained in ((0, "free", None, 30), (0, "clamp", 0.95, 30),
                                       (1, "clamp", 0.95, 20))]
  io.write_csv(os.path.join(path, "runs.csv"), rows)
  io.write_json(os.path.join(path, "config.json"), dict(config=dict(experiment="pinned_norm")))
  steps = np.tile([10, 20, 30], (3, 1))
  acc = np.array([[0.1, 0.95, 1.0], [0.2, 0.5, 0.875], [0.3, 0.7, np.nan]], np.float32)
  norm = np.array([[30.1, 28.5, 27.25], [25.0, 25.0, 25.0], [26.5, 26.0, np.nan]], np.float32)
  np.savez(os.path.join(path, "curves.npz"), steps=steps, test_acc=acc, norm=norm,
           **{k: np.array([np.nan if r[k] is None else r[k] for r in rows])
              for k in ("p", "seed", "lr", "rho", "arm", "layernorm")})
  return str(path)


def _scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
  """tag -> [(step, value)] of a run's event files, read as TFRecords of Event protos."""
  from tensorboardX.proto import event_pb2
  out: dict[str, list] = {}
  for name in sorted(os.listdir(run_dir)):
    with open(os.path.join(run_dir, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):  # length, its CRC, the record, its CRC
      (n,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
      pos += 16 + n
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out


def test_tensorboard_export_round_trips_every_curve(tmp_path, capsys):
  """`grokjax tensorboard FOLDER`: one run per subdirectory named by what sets it apart,
  every curve a scalar at its evaluated steps up to where the run stopped, the float32
  values exactly; a second export into the same logdir is one line and exit 2."""
  pytest.importorskip("tensorboardX")
  from grokjax import __main__ as entry
  folder = _folder(tmp_path / "pn")
  assert entry.main(["tensorboard", folder]) == 0
  logdir = os.path.join(folder, "tensorboard")
  assert capsys.readouterr().out.startswith(logdir)
  names = ["run0_arm=free_seed=0", "run1_arm=clamp_rho=0.95_seed=0",
           "run2_arm=clamp_rho=0.95_seed=1"]
  assert sorted(os.listdir(logdir)) == names
  res = results.load(folder)
  for i, name in enumerate(names):
    got = _scalars(os.path.join(logdir, name))
    assert sorted(got) == ["norm", "test_acc"]
    for curve, points in got.items():
      steps, values = res.curve(i, curve)
      assert [s for s, _ in points] == steps.tolist()
      np.testing.assert_array_equal(np.float32([v for _, v in points]), values)
  assert len(got["norm"]) == 2  # run 2 stopped at step 20
  assert entry.main(["tensorboard", folder]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "already holds event files" in err
  other = str(tmp_path / "elsewhere")
  assert results.to_tensorboard(folder, other) == other and len(os.listdir(other)) == 3


def test_tensorboard_export_without_tensorboardx_names_the_extra(tmp_path, monkeypatch):
  import builtins
  real = builtins.__import__

  def no_tensorboardx(name, *args, **kwargs):
    if name.startswith("tensorboardX"):
      raise ImportError(name)
    return real(name, *args, **kwargs)
  monkeypatch.setattr(builtins, "__import__", no_tensorboardx)
  with pytest.raises(ImportError, match=r"grokjax\[tensorboard\]"):
    results.to_tensorboard(_folder(tmp_path / "pn"))


# ---------------------------------------------------------------- --save-params grok

def test_the_device_grok_rule_agrees_with_reduce():
  """Program's watch over evaluations keeps the weights of the evaluation
  `grokjax.engine.reduce.first_crossing` calls T_grok, for every persist, with accuracies on
  both sides of float32's 0.9, and ignores the evaluations past a run's budget."""
  import jax
  import jax.numpy as jnp
  from grokjax.engine.program import GrokRule, Program
  from grokjax.engine.state import GrokState, RunState
  from grokjax.engine.reduce import first_crossing
  from grokjax.engine.spec import Runs, Task, hparams
  task = Task(p=5, d=2, hidden=2, eval_every=10)
  rng = np.random.default_rng(0)
  near = np.float32([0.9, np.nextafter(np.float32(0.9), np.float32(1)), 0.5, 1.0, np.nan])
  acc = rng.choice(near, size=(256, 12), p=[0.35, 0.1, 0.4, 0.05, 0.1])
  budget = rng.choice([90, 120], size=256)  # a run of 90 steps: its last 3 columns don't count
  steps = 10 * np.arange(1, 13)
  hp = hparams(Runs.free(np.arange(256), 0.01, 1.0, budget), np.float32)
  for persist in (1, 2, 3):
    prog = Program(task, GrokRule(0.9, persist))
    watch = jax.vmap(prog.watch_grok, in_axes=(0, 0, None, 0))
    state = RunState(params={"w": jnp.zeros(256)}, opt=None, step=None, diverged=None,
                     data=None, grok=GrokState(params={"w": jnp.full(256, jnp.nan)},
                                               streak=jnp.zeros(256, jnp.int32),
                                               step=jnp.full(256, -1, jnp.int32)))
    for col in range(12):  # the weights at evaluation col are col + 1
      state = state._replace(params={"w": jnp.full(256, col + 1.0)})
      state = watch(state, jnp.asarray(acc[:, col]), jnp.int32(col), hp)
    grok = jax.device_get(state.grok)
    crossed = grok.streak >= persist
    recorded = np.where(steps[None, :] <= budget[:, None], acc, np.nan)
    hit, want = first_crossing(steps, recorded, 0.9, persist)
    np.testing.assert_array_equal(np.where(crossed, grok.step, -1), want)
    np.testing.assert_array_equal(grok.params["w"][hit], want[hit] / 10)
    assert 0 < hit.sum() < 256
    if persist > 1:  # some streaks broke: their candidate weights were not taken
      assert np.isfinite(grok.params["w"][~crossed]).any()


def test_save_params_grok_keeps_the_weights_at_t_grok_and_changes_nothing(tmp_path):
  """A grid trained with keep_params none and grok, its folders written as --save-params
  none and grok write them: runs.csv and curves.npz byte for byte the same (fit.json is
  computed from runs.csv); params/ holds the runs that grokked, at runs.csv's T_grok, and
  their weights' norm is its norm_at_grok to float32 rounding (a free run's norm at the
  evaluation before differs). Vectorised, so a run's lane trains on frozen past its
  budget, evaluations the rule must not count."""
  import jax.numpy as jnp
  from grokjax.harness import grids
  from grokjax.experiments import registry
  from grokjax.problems.models import weight_norm
  from grokjax.engine.optim import NEVER
  from grokjax.harness.session import Session
  from grokjax.engine.spec import Runs
  from grokjax.engine.train import train
  # two free runs, one held near W_c, one with too short a budget to grok
  runs = Runs(seed=[0, 1, 0, 0], lr=0.03, wd=1.0, target_norm=[np.nan, np.nan, 25, 25],
              t_int=[NEVER, NEVER, 40, 40], budget=[200, 200, 200, 60])
  folders = {}
  for kept in ("none", "grok"):
    cfg = registry.resolve("pinned_norm", "smoke", moduli=[23], grok_persist=2,
                           save_params=kept)
    res = train(cfg.task(23), runs, chunk_steps=100, retire_margin=None,
                grok_persist=2, progress=False, vmap_width=None, keep_params=kept)
    sess = Session(cfg, str(tmp_path / kept), progress=False)
    rows = grids.run_table(res, cfg, ["free", "free", "clamp", "clamp"], [None, None, 1, 1])
    grids.write_tables(sess, [(res, rows)])
    folders[kept] = sess.out
  for name in ("runs.csv", "curves.npz"):
    with open(os.path.join(folders["none"], name), "rb") as a, \
         open(os.path.join(folders["grok"], name), "rb") as b:
      assert a.read() == b.read(), name
  assert not os.path.exists(os.path.join(folders["none"], "params"))
  res = results.load(folders["grok"])
  assert [r["grokked"] for r in res.runs] == [True, True, True, False]
  for i, row in enumerate(res.runs[:3]):
    params, step = res.params(i)
    assert step == row["t_grok"]
    kept = float(weight_norm({k: jnp.asarray(v) for k, v in params.items()}))
    assert kept == pytest.approx(row["norm_at_grok"], rel=1e-6)
    steps, norm = res.curve(i, "norm")
    if row["arm"] == "free":
      assert kept != pytest.approx(norm[list(steps).index(step) - 1], rel=1e-6)
  with pytest.raises(IndexError, match="run 3 never grokked"):
    res.params(3)
