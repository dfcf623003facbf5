"""Where XLA's float32 sum floors the framework cross-entropy: one clamp run of the paper's
MLP at p = 41, rho 1.15 (seed 0 of the shared stream, held at the moduli scan's W_c 49.74)
trained to 20,000 steps, then, over its train examples, the fraction at the floor (a
correct-class gradient of exactly 0), the fraction whose off-class mass is below 2^-24, and
the masses of the floored ones.

    python benchmarks/floor_probe.py        # about a minute on 2 CPU cores
"""

import numpy as np
import jax
import jax.numpy as jnp

from grokjax.engine import losses
from grokjax.engine.program import program
from grokjax.engine.spec import Runs, Task
from grokjax.engine.train import train

task = Task(p=41)
runs = Runs(np.array([0]), 1e-3, 1.0, 1.15 * 49.74050521850586, 500, 20000)
res = train(task, runs, progress=False, keep_params="final", retire_margin=None, chunk_steps=1000)
params = {k: jnp.asarray(v[0]) for k, v in res.params.items()}
prog = program(task)
state = jax.tree.map(lambda x: x[0], prog.init(np.array([task.init_seed(1.0, 0, "")], np.uint32)))
inputs, y, is_train = task.problem_def.eval_set(state.data)
logits = jax.jit(lambda p: prog.model(p)(*inputs))(params)
train_rows = np.asarray(is_train)
z, labels = jnp.asarray(np.asarray(logits)[train_rows]), jnp.asarray(np.asarray(y)[train_rows])
floored = np.asarray(losses.at_floor("cross_entropy", z, labels))
log2_mass = np.asarray(losses.off_class_log_mass(z, labels)) / np.log(2)
print(f"at the floor: {floored.mean():.3f} of {len(floored)} train examples; off-class mass "
      f"below 2^-24: {np.mean(log2_mass < -24):.3f}")
print("log2 off-class mass of the floored examples: min %.2f, median %.2f, max %.2f"
      % tuple(np.percentile(log2_mass[floored], [0, 50, 100])))
