"""SPEC 2: softmax regression's loss; logistic regression on a separable problem;
softmax regression trained on digits.

Run: python examples/softmax_logistic_regression.py
"""
import numpy as np

from fastnn.datasets import load_digits
from fastnn.model import MLP

# SPEC 2: logits Z = log A through W = I, b = 0 give the seed's mean loss 0.9335
A = np.array([[0.3792, 0.3104, 0.3104], [0.3072, 0.4147, 0.2780],
              [0.4263, 0.2248, 0.3490], [0.2668, 0.2978, 0.4354]])
m = MLP([3, 3], dtype=np.float64)
m.set_parameters(weights=[np.eye(3)], biases=[np.zeros(3)])
print("softmax regression loss (SPEC 2):", round(m.evaluate(np.log(A), [0, 1, 2, 2])["loss"], 5))

# logistic regression: two separable blobs
rng = np.random.default_rng(3)
X = np.concatenate([rng.normal(-2, 0.7, (60, 2)), rng.normal(2, 0.7, (60, 2))])
y = np.repeat([0, 1], 60)
logreg = MLP([2, 1], output="sigmoid", loss="cross_entropy", seed=0)
logreg.fit(X, y, epochs=30, batch_size=8, lr=0.5)
print("logistic regression accuracy:", logreg.score(X, y), " w =", logreg.weights[0].ravel(),
      " b =", logreg.biases[0])

# softmax regression (no hidden layer) on digits
X_train, y_train, X_test, y_test = load_digits()
soft = MLP([64, 10], seed=0)
soft.fit(X_train, y_train, epochs=30, batch_size=16, lr=0.5)
print("softmax regression on digits, test accuracy:", round(soft.score(X_test, y_test), 4))
