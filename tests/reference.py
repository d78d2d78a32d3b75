"""The tests' independent float64 reference: :mod:`fastnn.reference` (SciPy/NumPy in
float64), shared with ``fastnn check`` (imported by name from the test modules)."""
from fastnn.reference import *  # noqa: F401,F403
from fastnn.reference import f64  # noqa: F401
