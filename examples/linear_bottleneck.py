"""SPEC 8: a 100-10-100 linear network computes W2 W1, of rank <= 10; a 100-100 one
can represent any linear map. Run: python examples/linear_bottleneck.py
"""
import numpy as np

from fastnn.model import MLP

rng = np.random.default_rng(0)
X = rng.standard_normal((1000, 100))
M = rng.standard_normal((100, 100)) / 10
Y = X @ M.T                                                     # a full-rank linear map
for sizes in ([100, 10, 100], [100, 100]):
    net = MLP(sizes, hidden="identity", output="identity", loss="mse", dtype=np.float64)
    net.fit(X, Y, epochs=40, batch_size=20, lr=0.05)
    prod = net.weights[0]
    for W in net.weights[1:]:
        prod = W @ prod
    print(f"{sizes}: rank of the learned map = {np.linalg.matrix_rank(prod)}, "
          f"R² = {net.score(X, Y):.4f}")
