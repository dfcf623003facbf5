import os
import tempfile

# Tests run on the CPU, as one device unless a test asks for more (test_sharding), and
# keep compiled programs in a cache of their own.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("GROKJAX_CPU_DEVICES", "1")
os.environ.setdefault("GROKJAX_CACHE", tempfile.mkdtemp(prefix="grokjax-test-cache-"))
