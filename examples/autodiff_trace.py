"""Notes 004: the three ways to differentiate f(x₁, x₂) = ln(x₁) + x₁x₂ − sin(x₂) at (2, 5).

The evaluation trace as the notes write it, the same trace with the forward-mode
derivative columns and the reverse-mode adjoints, and the partial derivatives computed
numerically (forward and central differences), symbolically (SymPy, if installed:
pip install 'fastnn-kernels[symbolic]') and automatically (forward and reverse mode),
beside the exact values 1/x₁ + x₂ = 5.5 and x₁ − cos(x₂) = 1.7163...

Run: python examples/autodiff_trace.py
"""
import math

from fastnn import autodiff as ad


def f(x1, x2):
    return ad.log(x1) + x1 * x2 - ad.sin(x2)


x1, x2 = 2.0, 5.0
t = ad.trace(f, x1, x2)
print("Evaluation trace (forward evaluation):")
print(t)
print("\nWith the derivatives: forward mode (one column per seed ẋᵢ = 1) and the adjoints:")
print(t.table())

rows = [("exact: 1/x1 + x2, x1 - cos x2", (1 / x1 + x2, x1 - math.cos(x2))),
        ("numerical, forward difference", ad.numerical_grad(f, x1, x2, argnums=(0, 1), method="forward")),
        ("numerical, central difference", ad.numerical_grad(f, x1, x2, argnums=(0, 1), method="central"))]
try:
    exprs = ad.symbolic_grad("ln(x1) + x1*x2 - sin(x2)", ["x1", "x2"])
    rows.append((f"symbolic: {exprs[0]}, {exprs[1]}",
                 ad.symbolic_grad("ln(x1) + x1*x2 - sin(x2)", ["x1", "x2"], at=(x1, x2))))
except ImportError as exc:
    rows.append((f"symbolic: not available ({exc})", (math.nan, math.nan)))
rows += [("automatic, forward mode (dual numbers)", ad.jacfwd(f, argnums=(0, 1))(x1, x2)),
         ("automatic, reverse mode (tape)", ad.grad(f, argnums=(0, 1))(x1, x2))]
print("\n" + f"{'method':40s} {'df/dx1':>20s} {'df/dx2':>20s}")
for name, (d1, d2) in rows:
    print(f"{name:40s} {d1:20.15f} {d2:20.15f}")
