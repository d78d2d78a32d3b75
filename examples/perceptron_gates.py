"""Notes 003: logic gates with the perceptron rule, XOR from two layers, and ADALINE.

1. The notes' worked gates: step threshold 1, no bias, weights starting at [1, 1],
   γ = 1.5. AND(x₁, ¬x₂) and AND(¬x₁, x₂) each need one update and end at the rows of
   the notes' hand-weight matrix [[1, −0.5], [−0.5, 1]]; OR is right from the start.
2. XOR = OR[AND(x₁, ¬x₂), AND(¬x₁, x₂)]: the notes' truth table, column by column.
3. The algorithm box (w := 0, b := 0, threshold 0) with γ = 1 and γ = 1.5 learns AND
   and OR; a single perceptron never learns XOR (every epoch makes errors), and fit
   says so instead of looping forever.
4. ADALINE: the notes' stochastic-gradient table (x = [50, 80, 120], y = [150, 200,
   280], η = 0.0001) is ADALINE's delta rule; then ADALINE learns AND and OR.

Run: python examples/perceptron_gates.py
"""
import warnings

import numpy as np

import fastnn
from fastnn import Adaline, Perceptron

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0],
         "AND1 = x1·¬x2": [0, 0, 1, 0], "AND2 = ¬x1·x2": [0, 1, 0, 0]}
NOTES = dict(eta=1.5, threshold=1.0, fit_intercept=False)     # the notes' gate settings

print("1. The notes' gates: threshold 1, no bias, w from [1, 1], γ = 1.5")
units = {}
for gate in ("AND1 = x1·¬x2", "AND2 = ¬x1·x2", "OR"):
    p = Perceptron(**NOTES).fit(X, GATES[gate], coef_init=[1, 1])
    units[gate] = p
    print(f"   {gate:14s} w = {p.coef_}   errors per epoch {p.errors_}   "
          f"outputs {p.predict(X).tolist()}")
W = np.array([units["AND1 = x1·¬x2"].coef_, units["AND2 = ¬x1·x2"].coef_])
print(f"   hidden weights (the notes' matrix): {W.tolist()}")

print("\n2. XOR = OR[AND(x1, ¬x2), AND(¬x1, x2)]")
H = np.column_stack([units["AND1 = x1·¬x2"].predict(X), units["AND2 = ¬x1·x2"].predict(X)])
out = units["OR"].predict(H)
print("   x1 x2 | W·x            | AND1 AND2 | OR = XOR")
for x, h, o in zip(X, H, out):
    print(f"   {x[0]:2d} {x[1]:2d} | {str((W @ x).tolist()):14s} | {h[0]:4d} {h[1]:4d} | {o:2d}")
assert out.tolist() == GATES["XOR"]

print("\n3. The algorithm box: w := 0, b := 0, threshold 0")
for gate in ("AND", "OR", "XOR"):
    for eta in (1.0, 1.5):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", fastnn.ConvergenceWarning)
            p = Perceptron(eta=eta, max_iter=20).fit(X, GATES[gate])
        line = (f"   {gate:3s} γ = {eta}: w = {p.coef_}, b = {p.b_:5.1f}, errors per epoch "
                f"{p.errors_[:8]}{' ...' if len(p.errors_) > 8 else ''}, converged: {p.converged_}")
        print(line)
        for w in caught:
            print(f"      reported: {w.message}")
same = [Perceptron(eta=1.5, impl=impl).fit(X, GATES["AND"]).coef_.tolist()
        for impl in fastnn.impls()]
print(f"   loop, vectorized, jit give the same weights: {same}")

print("\n4. ADALINE (the Widrow-Hoff delta rule = stochastic gradient descent)")
x = np.array([[50.0], [80.0], [120.0]])
y = np.array([150.0, 200.0, 280.0])
w, b = np.zeros(1), np.zeros(1)
print("   the notes' table, η = 0.0001 (they print the digits truncated):")
for i in range(3):
    fastnn.adaline_epoch(x, y, w, b, eta=1e-4, order=[i])
    print(f"   iteration {i + 1}, sample ({x[i, 0]:.0f}, {y[i]:.0f}): w = {w[0]:.5f}, b = {b[0]:.5f}")
w[:], b[:] = 0, 0
for _ in range(10):
    sse = fastnn.adaline_epoch(x, y, w, b, eta=1e-4)
print(f"   after 10 epochs: w = {w[0]:.4f}, b = {b[0]:.4f} (the notes: 2.26, 0.051); "
      f"that epoch's Σ err² = {sse:.1f}")
for gate in ("AND", "OR"):
    a = Adaline(eta=0.1, max_iter=500).fit(X, GATES[gate])
    print(f"   {gate}: w = {np.round(a.coef_, 3)}, b = {a.b_:.3f}, outputs xᵀw + b = "
          f"{np.round(a.net_input(X), 2).tolist()} -> {a.predict(X).tolist()}, Σ err² per epoch "
          f"{a.errors_[0]:.3f} ... {a.errors_[-1]:.3f} ({a.n_iter_} epochs)")
