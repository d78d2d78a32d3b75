"""SPEC "Updates", L1 (seed 000, ex. 3): proximal SGD sets weights exactly to zero,
more of them as l1 grows. Softmax regression on digits. Run: python examples/l1_sparsity.py
"""
import numpy as np

from fastnn.datasets import load_digits
from fastnn.model import MLP

X_train, y_train, X_test, y_test = load_digits(dtype=np.float64)
for l1 in (0.0, 1e-3, 1e-2, 5e-2):
    m = MLP([64, 10], dtype=np.float64, seed=0)
    m.fit(X_train, y_train, epochs=20, batch_size=32, lr=0.2, l1=l1)
    W = m.weights[0]
    print(f"l1 = {l1:<6}: {np.count_nonzero(W == 0):4d} of {W.size} weights exactly 0, "
          f"test accuracy {m.score(X_test, y_test):.3f}")
