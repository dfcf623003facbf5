"""Checkpoints of the training loop's state (orbax), tagged with their grid, the device
count their batch layout was made for, and a SHA-256 of their content.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os

import jax
import numpy as np

from grokjax.engine.runtime import to_host
from grokjax.engine.spec import Runs, Task
from grokjax.engine.state import LoopState

# Bumped whenever the per-run state's layout changes, so that a checkpoint of an older
# grokjax is refused with a message instead of restored into the wrong shapes.
# 2: the training data in the state (problems); 3: the MLP's W2 stored [p, H];
# 4: the floor curves (floor, floor_f32, floor_err) in the loop state; 5: typed states
# (program.RunState, LoopState), whose leaves come in field order.
STATE_LAYOUT = 5


@contextlib.contextmanager
def _quiet_orbax():
  """orbax logs through absl what grokjax then says in one line (a damaged file, a full
  disk): its own lines are silenced while it reads or writes."""
  logger = logging.getLogger("absl")
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(level)


def grid_fingerprint(task: Task, runs: Runs) -> str:
  h = hashlib.sha256(f"layout {STATE_LAYOUT}|".encode())
  h.update(repr(dataclasses.asdict(task)).encode())
  for f in dataclasses.fields(runs):
    h.update(np.ascontiguousarray(getattr(runs, f.name)).tobytes())
  return h.hexdigest()


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[0][:200] if text else ""


class Checkpoints:
  """The loop state of `train` in an orbax CheckpointManager, tagged with its grid, the
  device count its batch layout was made for, and a SHA-256 of its content, so that a
  damaged checkpoint or one of another layout is refused instead of resumed."""

  def __init__(self, directory: str, fingerprint: str, n_devices: int = 1):
    import orbax.checkpoint as ocp
    self._ocp = ocp
    self.fingerprint = np.frombuffer(bytes.fromhex(fingerprint), np.uint8)
    self.n_devices = int(n_devices)
    with _quiet_orbax():
      self.manager = ocp.CheckpointManager(
          os.path.abspath(directory),
          options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False))

  @staticmethod
  def digest(tree) -> np.ndarray:
    """SHA-256 over every array of the tree (keys sorted; dtype, shape and bytes)."""
    h = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_flatten_with_path(tree)[0],
                             key=lambda kv: jax.tree_util.keystr(kv[0])):
      a = np.ascontiguousarray(np.asarray(leaf))
      h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
      h.update(a.tobytes())
    return np.frombuffer(h.digest(), np.uint8)

  def _files_digest(self, step: int) -> str:
    """SHA-256 over the files orbax wrote for `step` (relative names and bytes)."""
    root = os.path.join(str(self.manager.directory), str(step))
    h = hashlib.sha256()
    for d, _, names in sorted(os.walk(root)):
      for name in sorted(names):
        path = os.path.join(d, name)
        h.update(os.path.relpath(path, root).encode() + b"|")
        with open(path, "rb") as f:
          h.update(f.read())
    return h.hexdigest()

  def _sidecar(self, step: int) -> str:
    return os.path.join(str(self.manager.directory), f"sha256-{step}.txt")

  def restore(self):
    with _quiet_orbax():
      step = self.manager.latest_step()
    if step is None:
      return None
    where = f"checkpoint in {self.manager.directory}"
    # Its files against the SHA-256 written beside them, before orbax reads a byte: a damaged
    # file is refused here, not inside tensorstore's reads (which outlive a failed restore
    # and report at exit). A checkpoint without the file (an older grokjax's) goes on.
    if os.path.exists(self._sidecar(step)):
      with open(self._sidecar(step), "rb") as f:
        if f.read().strip() != self._files_digest(step).encode():
          raise ValueError(f"{where} is damaged (its files do not match the SHA-256 saved "
                           "beside them); delete it (the phase restarts) or use --force-new")
    try:
      with _quiet_orbax():
        tree = self.manager.restore(step, args=self._ocp.args.StandardRestore())
    except Exception as e:  # orbax and tensorstore raise many kinds for a damaged file
      raise ValueError(f"{where} cannot be read ({type(e).__name__}); delete it (the phase "
                       "restarts) or use --force-new") from None
    if not np.array_equal(np.asarray(tree["fingerprint"]), self.fingerprint):
      raise ValueError(f"{where} belongs to another grid, or "
                       "to a grokjax whose state layout differs (train.STATE_LAYOUT)")
    saved_devices = int(tree.get("n_devices", self.n_devices))
    if saved_devices != self.n_devices:
      raise ValueError(f"{where} was made on {saved_devices} devices and this process has "
                       f"{self.n_devices}: resume with the same count (on a CPU, "
                       f"GROKJAX_CPU_DEVICES={saved_devices}) or use --force-new")
    body = {k: v for k, v in tree.items() if k != "digest"}
    if "digest" in tree and not np.array_equal(np.asarray(tree["digest"]), self.digest(body)):
      raise ValueError(f"{where} is damaged (its content does not match the SHA-256 saved "
                       "with it); delete it (the phase restarts) or use --force-new")
    loop = LoopState(**{k: v for k, v in tree.items()
                        if k not in ("fingerprint", "state", "n_devices", "digest")})
    return loop, list(tree["state"])

  def save(self, step: int, loop: LoopState, state) -> None:
    if step in self.manager.all_steps():
      return  # nothing trained since that save (a resume of a finished state): it stands
    tree = dict(loop.tree(), fingerprint=self.fingerprint, n_devices=np.int64(self.n_devices),
                state=to_host(jax.tree.leaves(state)))
    tree["digest"] = self.digest(tree)
    try:
      with _quiet_orbax():
        self.manager.save(step, args=self._ocp.args.StandardSave(tree), force=True)
        self.manager.wait_until_finished()
      if jax.process_index() != 0:  # one process writes it (the others share the folder)
        return
      digest = self._files_digest(step)
      tmp = f"{self._sidecar(step)}.{os.getpid()}.tmp"
      with open(tmp, "w") as f:
        f.write(digest + "\n")
      os.replace(tmp, self._sidecar(step))
      for name in os.listdir(str(self.manager.directory)):  # those of steps orbax dropped
        if name.startswith("sha256-") and name != os.path.basename(self._sidecar(step)):
          os.remove(os.path.join(str(self.manager.directory), name))
    except OSError:
      raise
    except Exception as e:  # orbax wraps a full disk and other write faults in its own kinds
      raise OSError(f"checkpoint in {self.manager.directory} could not be written "
                    f"({type(e).__name__}: {_first_line(e)}); free space and run the same "
                    "command again: it resumes from the last checkpoint") from None

  def close(self):
    self.manager.close()

