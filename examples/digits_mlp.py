"""A 64-32-10 sigmoid MLP on the embedded digits data set, with every implementation:
test accuracy and median epoch time. Same as ``fastnn train --impl IMPL``.
Run: python examples/digits_mlp.py [epochs]
"""
import sys

import numpy as np

import fastnn
from fastnn.datasets import load_digits
from fastnn.gradcheck import gradcheck
from fastnn.model import MLP

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
X_train, y_train, X_test, y_test = load_digits()
for impl in fastnn.impls():
    n = epochs if impl != "loop" else min(epochs, 3)
    model = MLP([64, 32, 10], hidden="sigmoid", seed=0, impl=impl)
    model.fit(X_train, y_train, epochs=1, batch_size=16, lr=0.5)        # compiles (jit)
    h = model.fit(X_train, y_train, epochs=n - 1, batch_size=16, lr=0.5) if n > 1 else []
    med = float(np.median(h.seconds)) if len(h) else float("nan")
    print(f"{impl:<10} {model.epoch:3d} epochs  test accuracy {model.score(X_test, y_test):.4f}  "
          f"median epoch {med * 1e3:9.2f} ms")
print("gradcheck of a fresh 64-32-10 model (max relative error):",
      {k: f"{v:.1e}" for k, v in gradcheck(MLP([64, 32, 10], seed=0), X_train[:20], y_train[:20]).items()})
