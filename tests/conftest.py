import os

# Tests run on the CPU, as one device unless a test asks for more (test_sharding).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("GROKJAX_CPU_DEVICES", "1")
