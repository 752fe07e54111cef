"""pytest set-up of the Python package tests (test/Python/python.test runs
them with PYTHONPATH=<repo>/python and ROPEATTN_CAPI_LIBRARY set)."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

try:
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
except ImportError:  # the JAX tests fail with a clear import error instead
    pass
