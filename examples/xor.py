"""SPEC 4: XOR with a 2-2-1 sigmoid network, quadratic cost, batch gradient descent.

seed=1 learns it; seeds 0 and 4 fall into the classic local minimum (two outputs
stuck at 0.5), a lesson of its own. Run: python examples/xor.py
"""
import numpy as np

from fastnn.model import MLP

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
y = np.array([0, 1, 1, 0])
for seed in (1, 0):
    net = MLP([2, 2, 1], hidden="sigmoid", output="sigmoid", loss="mse", seed=seed)
    h = net.fit(X, y, epochs=5000, batch_size=None, lr=2.0)
    print(f"seed {seed}: outputs {np.round(net.predict_proba(X).ravel(), 3)}, "
          f"final cost {h.loss[-1]:.5f}, learned: {bool((net.predict(X) == y).all())}")
