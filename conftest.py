import os
import tempfile

# The suite runs on the CPU, as one JAX device unless a test asks for more
# (test_sharding). GROKJAX_TEST_DEVICE=1 leaves the platform to JAX, so the same tests
# run on an accelerator when one is present (the device lane).
if os.environ.get("GROKJAX_TEST_DEVICE") != "1":
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  # Most of the suite's time is XLA compiling small programs. Backend optimisation level 1
  # compiles them about 1.8x faster than the default 2 and trains the paper's MLP about 3 %
  # slower (benchmarks/README.md); every test compares programs compiled alike. A user's
  # own XLA_FLAGS win (GROKJAX_TEST_XLA_DEFAULT=1: XLA's default level).
  if os.environ.get("GROKJAX_TEST_XLA_DEFAULT") != "1":
    os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=1")
else:  # the suite's worker processes share one accelerator: none may take its memory whole
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("GROKJAX_CPU_DEVICES", "1")
# Compiled programs go to a cache of the suite's own, never the user's: one folder for the
# whole run (made by the first process, inherited by the xdist workers and by every
# subprocess a test starts), so a program one process compiled the others load.
os.environ.setdefault("GROKJAX_CACHE", tempfile.mkdtemp(prefix="grokjax-test-cache-"))


def pytest_configure(config):
  from grokjax.runtime import enable_compilation_cache
  enable_compilation_cache()
