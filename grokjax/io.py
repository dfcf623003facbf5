"""Results-folder I/O. Every file is written atomically: a kill never leaves half a file."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import tempfile
from typing import Any, Iterable

import numpy as np


def _file_mode() -> int:
  """The mode a plain `open(path, "w")` would give: 0o666 less the umask (mkstemp's own
  0o600 would hide every result from the user's group)."""
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


def atomic_bytes(path: str, payload: bytes) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    os.fchmod(fd, _file_mode())
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def plain(x: Any) -> Any:
  """numpy scalars/arrays -> JSON-ready Python values; NaN and inf -> None."""
  if isinstance(x, dict):
    return {str(k): plain(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [plain(v) for v in x]
  if isinstance(x, np.ndarray):
    return plain(x.tolist())
  if isinstance(x, (np.bool_, bool)):
    return bool(x)
  if isinstance(x, (np.integer, int)):
    return int(x)
  if isinstance(x, (np.floating, float)):
    return None if not math.isfinite(float(x)) else float(x)
  return x


def write_json(path: str, obj: Any) -> None:
  atomic_bytes(path, (json.dumps(plain(obj), indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def write_csv(path: str, rows: Iterable[dict[str, Any]]) -> None:
  rows = list(rows)
  buf = io.StringIO()
  fields = list(rows[0]) if rows else []
  writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
  writer.writeheader()
  for row in rows:
    writer.writerow({k: _csv_cell(v) for k, v in row.items()})
  atomic_bytes(path, buf.getvalue().encode())


def _csv_cell(v: Any) -> Any:
  v = plain(v)
  if v is None:
    return ""
  if isinstance(v, float):
    return repr(v)
  return v


def write_npz(path: str, **arrays: np.ndarray) -> None:
  buf = io.BytesIO()
  np.savez_compressed(buf, **arrays)
  atomic_bytes(path, buf.getvalue())


def environment() -> dict[str, Any]:
  """Package versions and the device a result was computed on."""
  import jax, flax, optax  # noqa: E401  (imported here: only results need the versions)
  from grokjax import __version__
  dev = jax.devices()[0]
  return dict(grokjax=__version__, jax=jax.__version__, flax=flax.__version__,
              optax=optax.__version__, numpy=np.__version__, python=platform.python_version(),
              platform=dev.platform, device=getattr(dev, "device_kind", str(dev)),
              device_count=jax.device_count(), process_count=jax.process_count(),
              host=platform.node(), cpu=_cpu_name(), cores=os.cpu_count(),
              xla_flags=os.environ.get("XLA_FLAGS", ""), x64=bool(jax.config.jax_enable_x64))


def _cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()
