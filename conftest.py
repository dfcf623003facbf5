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
  if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
    return  # the xdist controller runs no test: JAX stays unimported there (~4 s at start)
  from grokjax.engine.runtime import enable_compilation_cache
  enable_compilation_cache()


# The longest tests start first, so that neither worker is left alone with one at the end
# (xdist hands out tests in collection order). In the xdist group "smoke" the first two
# compile the programs the README's and the two-process test then load. Names only order
# the run; none is skipped.
LONGEST_FIRST = (
    "test_free_training_smoke", "test_free_run_groks_at_a_common_norm",
    "test_a_killed_process_stops_its_peer", "test_readme_python_blocks_run",
    "test_per_run_layernorm_switch_equals_each_variant_alone",
    "test_sparse_parity_experiment_smoke", "test_pinned_norm_padded_moduli_equal_one_by_one",
    "test_sigkill_then_resume_equals_uninterrupted", "test_sharded_equals_single_device",
    "test_batches_are_powers_of_two", "test_float64_option_runs_in_x64",
)


def pytest_collection_modifyitems(config, items):
  rank = lambda item: next((i for i, name in enumerate(LONGEST_FIRST) if name in item.nodeid),
                           len(LONGEST_FIRST))
  items.sort(key=rank)
