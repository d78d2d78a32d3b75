"""SPEC 3 (seed 003): linear regression ŷ = w x + b by online SGD from w = b = 0.

Run: python examples/linear_regression.py
"""
import numpy as np

import fastnn
from fastnn.model import MLP

x = np.array([50.0, 80.0, 120.0])
y = np.array([150.0, 200.0, 280.0])
for impl in fastnn.impls():
    model = MLP([1, 1], output="identity", loss="mse", dtype=np.float64, impl=impl)
    model.set_parameters(weights=[[[0.0]]], biases=[[0.0]])          # w = b = 0
    print(f"{impl}:")
    for i in range(3):                                                # sample by sample
        model.fit(x[i:i + 1], y[i:i + 1], epochs=1, batch_size=1, lr=1e-4, shuffle=False)
        print(f"  after sample {i + 1}: w = {model.weights[0].item():.6f}, b = {model.biases[0].item():.6f}")
    model.fit(x, y, epochs=9, batch_size=1, lr=1e-4, shuffle=False)
    print(f"  after 10 epochs: w = {model.weights[0].item():.4f}, b = {model.biases[0].item():.4f}"
          "   (SPEC 3: 2.2673, 0.0515)")
