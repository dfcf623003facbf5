import os
import tempfile

# The suite runs on the CPU, as one JAX device unless a test asks for more
# (test_sharding). GROKJAX_TEST_DEVICE=1 leaves the platform to JAX, so the same tests
# run on an accelerator when one is present (the device lane).
if os.environ.get("GROKJAX_TEST_DEVICE") != "1":
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("GROKJAX_CPU_DEVICES", "1")
# Compiled programs go to a cache of the suite's own, never the user's.
os.environ.setdefault("GROKJAX_CACHE", tempfile.mkdtemp(prefix="grokjax-test-cache-"))
