"""pytest configuration for tests/: the hypothesis profile and shared fixtures.
Helpers live in numerics.py and reference.py (imported by module name)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Numba compiles on the first example: no per-example deadline.
# Under CI (CI=true) the examples are derandomized: the gate is reproducible, while
# local runs keep exploring new inputs.
settings.register_profile(
    "fastnn", deadline=None, max_examples=int(os.environ.get("FASTNN_HYPOTHESIS_EXAMPLES", "20")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("CI", "").lower() == "true", print_blob=True,
)
settings.load_profile("fastnn")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


