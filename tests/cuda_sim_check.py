"""Every cuda kernel on Numba's CUDA simulator, against the float64 reference.

Run as ``NUMBA_ENABLE_CUDASIM=1 python tests/cuda_sim_check.py`` (the variable must be
set before Numba is imported, so tests/test_cuda.py runs this in a subprocess); prints
one JSON object: per operation, how many checks ran and which failed (with why).

Small odd shapes only (the simulator runs every GPU thread as a Python thread): empty,
1 x 1, and shapes that leave ragged tiles, row strides and partial blocks; float32
and float64 through the public API (``impl="cuda"``, host arrays), in place where the
API allows it, non-finite rows, an out-of-range label, and device arrays in and out
(``cuda.to_device``; the result stays a device array) through the raw kernels and the
public API.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
import reference as ref  # noqa: E402
from numerics import assert_close  # noqa: E402

REPORT = defaultdict(lambda: {"checks": 0, "failures": [], "seconds": 0.0})
SHAPES = [(1, 1), (3, 7), (5, 19)]
DTYPES = (np.float32, np.float64)
rng = np.random.default_rng(24)


def check(op, what, nonfinite=False):
    def deco(fn):
        REPORT[op]["checks"] += 1
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                if nonfinite:
                    # NumPy's scalar arithmetic, which the simulator runs each thread's
                    # code with, warns on inf - inf; a GPU has no floating-point warnings
                    warnings.filterwarnings("ignore", category=RuntimeWarning)
                fn()
        except Exception as exc:  # noqa: BLE001 - reported, the test asserts on it
            REPORT[op]["failures"].append(
                f"{what}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}")
        REPORT[op]["seconds"] = round(REPORT[op]["seconds"] + time.perf_counter() - t, 3)
        return fn
    return deco


def arr(shape, dt, lo=None, hi=None):
    if lo is None:
        return rng.standard_normal(shape).astype(dt)
    return rng.uniform(lo, hi, shape).astype(dt)


def close(a, r, dt, scale=1.0, what=""):
    assert np.asarray(a).dtype == np.dtype(dt), f"{what}: dtype {np.asarray(a).dtype} != {dt}"
    assert_close(a, r, dt, scale=scale, what=what)


def main():
    from numba import cuda
    from fastnn.kernels import IMPLS
    t0 = time.perf_counter()
    assert "cuda" in fastnn.impls(), fastnn.kernels.UNAVAILABLE
    for dt in DTYPES:
        name = np.dtype(dt).name
        for (N, C) in SHAPES + [(0, 5)]:
            tag = f"{name} {(N, C)}"
            Z = arr((N, C), dt, -4, 4)

            @check("softmax", tag)
            def _():
                close(fastnn.softmax(Z, impl="cuda"), ref.softmax(Z), dt, what="P")

            @check("log_softmax", tag)
            def _():
                close(fastnn.log_softmax(Z, impl="cuda"), ref.log_softmax(Z), dt, what="logP")

            @check("sigmoid", tag)
            def _():
                close(fastnn.sigmoid(Z * 8, impl="cuda"), ref.sigmoid(Z * 8), dt, what="H")

            @check("sigmoid_backward", tag)
            def _():
                dH, H = arr((N, C), dt), arr((N, C), dt, 0, 1)
                close(fastnn.sigmoid_backward(dH, H, impl="cuda"), ref.sigmoid_backward(dH, H),
                      dt, what="dZ")

            for K in ((1,) if C == 1 else (9,)):      # 9: two tiles of 8, one ragged
                X, W, b = arr((N, C), dt), arr((K, C), dt), arr(K, dt)
                tagk = f"{tag} K={K}"

                @check("linear", tagk)
                def _():
                    close(fastnn.linear(X, W, b, impl="cuda"), ref.linear(X, W, b), dt,
                          scale=max(C, 1), what="Z")

                @check("linear_sigmoid", tagk)
                def _():
                    close(fastnn.linear_sigmoid(X, W, b, impl="cuda"), ref.linear_sigmoid(X, W, b),
                          dt, scale=max(C, 1), what="H")

                dZ, H = arr((N, K), dt), arr((N, C), dt, 0, 1)

                @check("linear_backward", tagk)
                def _():
                    got = fastnn.linear_backward(dZ, X, W, impl="cuda")
                    want = ref.linear_backward(dZ, X, W)
                    for g, w, nm, sc in zip(got, want, ("dW", "db", "dX"), (N, N, K)):
                        close(g, w, dt, scale=max(sc, 1), what=nm)
                    if C == 1:                       # (the simulator is slow: once)
                        dW, db, dX = fastnn.linear_backward(dZ, X, W, compute_dX=False,
                                                            impl="cuda")
                        assert dX is None
                        close(dW, want[0], dt, scale=max(N, 1), what="dW (no dX)")

                @check("hidden_delta", tagk)
                def _():
                    close(fastnn.hidden_delta(dZ, W, H, impl="cuda"), ref.hidden_delta(dZ, W, H),
                          dt, scale=max(K, 1), what="delta")

            @check("sgd_update", tag)
            def _():
                for mom, wd, l1, nest in ((0.0, 0.0, 0.0, False), (0.9, 0.01, 0.05, True),
                                          (0.5, 0.0, 0.2, False)):
                    w, g = arr((N, C), dt), arr((N, C), dt)
                    v = arr((N, C), dt) if mom else None
                    w_ref, v_ref = ref.sgd_update(w, g, 0.1, mom, v, wd, l1, nest)
                    fastnn.sgd_update(w, g, 0.1, momentum=mom, velocity=v, weight_decay=wd,
                                      l1=l1, nesterov=nest, impl="cuda")
                    close(w, w_ref, dt, scale=4, what=f"param mom={mom} l1={l1}")
                    if mom:
                        close(v, v_ref, dt, scale=4, what="velocity")

            if N == 0:
                continue
            if C == 1:                  # one class: the API refuses a cross-entropy
                for op in ("softmax_cross_entropy", "softmax_cross_entropy_grad"):
                    @check(op, f"{tag} one class is a ValueError")
                    def _():
                        try:
                            getattr(fastnn, op)(Z, np.zeros(N, int), impl="cuda")
                        except ValueError as exc:
                            assert "one class" in str(exc), exc
                        else:
                            raise AssertionError("no ValueError for one class")
                continue
            y = rng.integers(0, C, N)
            Yt = arr((N, C), dt, 0, 1)
            for tgt, tname in ((y, "labels"), (Yt, "target rows"))[:1 if C < 19 else 2]:
                @check("softmax_cross_entropy", f"{tag} {tname}")
                def _():
                    L = fastnn.softmax_cross_entropy(Z, tgt, impl="cuda")
                    close(L, ref.softmax_cross_entropy(Z, tgt), dt, scale=4, what="L")

                @check("softmax_cross_entropy_grad", f"{tag} {tname}")
                def _():
                    L, dZ = fastnn.softmax_cross_entropy_grad(Z, tgt, impl="cuda")
                    L0, dZ0 = ref.softmax_cross_entropy_grad(Z, tgt)
                    close(L, L0, dt, scale=4, what="L")
                    close(dZ, dZ0, dt, what="dZ")

            Y01 = arr((N, C), dt, 0, 1)
            for opname in ("sigmoid_bce_grad", "sigmoid_mse_grad"):
                @check(opname, tag)
                def _():
                    J, dZ = getattr(fastnn, opname)(Z * 4, Y01, impl="cuda")
                    J0, dZ0 = getattr(ref, opname)(Z * 4, Y01)
                    close(J, J0, dt, scale=8, what="loss")
                    close(dZ, dZ0, dt, what="dZ")

        # in place, non-finite rows, large finite logits, a bad label, device arrays
        Zs = arr((4, 33), dt, -4, 4)

        @check("softmax", f"{name} in place")
        def _():
            Z = Zs.copy()
            out = fastnn.softmax(Z, out=Z, impl="cuda")
            assert out is Z
            close(Z, ref.softmax(Zs), dt, what="P in place")

        @check("log_softmax", f"{name} in place")
        def _():
            Z = Zs.copy()
            fastnn.log_softmax(Z, out=Z, impl="cuda")
            close(Z, ref.log_softmax(Zs), dt, what="logP in place")

        @check("sigmoid", f"{name} in place")
        def _():
            Z = Zs.copy()
            fastnn.sigmoid(Z, out=Z, impl="cuda")
            close(Z, ref.sigmoid(Zs), dt, what="H in place")

        @check("softmax", f"{name} non-finite rows", nonfinite=True)
        def _():
            big = float(np.finfo(dt).max) / 4
            Z = np.array([[np.nan, 0, 1], [-np.inf, 0, 1], [-np.inf] * 3, [np.inf, 0, 1],
                          [big, -big, 0.0]], dt)
            P = fastnn.softmax(Z, impl="cuda")
            assert np.isnan(P[0]).all() and np.isnan(P[2]).all() and np.isnan(P[3]).all(), P
            assert P[1, 0] == 0 and np.isfinite(P[1]).all(), P
            np.testing.assert_array_equal(P[4], np.array([1, 0, 0], dt))
            Lp = fastnn.log_softmax(Z[1:2], impl="cuda")
            assert Lp[0, 0] == -np.inf, Lp
            close(Lp[:, 1:], ref.log_softmax(Z[1:2])[:, 1:], dt, what="logP with -inf")

        @check("softmax_cross_entropy_grad", f"{name} large finite logits")
        def _():
            Z = np.array([[1e30, -1e30, 0.0], [0.0, 1.0, 2.0]], dt)
            L, dZ = fastnn.softmax_cross_entropy_grad(Z, np.array([0, 2]), impl="cuda")
            L0, dZ0 = ref.softmax_cross_entropy_grad(Z, np.array([0, 2]))
            assert np.isfinite(dZ).all() and np.isfinite(L)
            close(L, L0, dt, scale=4, what="L")
            close(dZ, dZ0, dt, what="dZ")

        @check("softmax_cross_entropy_grad", f"{name} raw kernel, label out of range")
        def _():
            Z = Zs[:3, :5].copy()
            dZ = np.full_like(Z, 7.0)
            try:
                IMPLS["softmax_cross_entropy_grad"]["cuda"](Z, np.array([0, 5, -1], np.intp), dZ)
            except ValueError as exc:
                assert "index 1" in str(exc) and "[0, 5)" in str(exc), exc
            else:
                raise AssertionError("no ValueError for label 5 of 5 classes")

        device_checks(dt, IMPLS, cuda)

    X = arr((7, 3), np.float32)
    y = rng.integers(0, 3, 7)
    Yr = arr((7, 2), np.float32)
    for kw, tgt, fit, sizes in (
            ({}, y, dict(momentum=0.9, weight_decay=0.01, l1=0.001), [3, 4, 3]),
            (dict(output="sigmoid", loss="cross_entropy"), y, {}, [3, 4, 3]),
            (dict(output="identity", loss="mse"), Yr, dict(momentum=0.5), [3, 4, 2])):
        @check("MLP.fit", f"float32 {kw or 'softmax'} {fit}, batches of 4 (a ragged last one)")
        def _():
            # the device-resident epoch (impl="cuda") against impl="vectorized"
            got = {}
            for impl in ("vectorized", "cuda"):
                m = fastnn.MLP(sizes, impl=impl, seed=1, **kw)
                h = m.fit(X, tgt, epochs=2, batch_size=4, lr=0.1, **fit)
                got[impl] = ([w.copy() for w in m.weights] + [b.copy() for b in m.biases],
                             [(r["loss"], r["accuracy"]) for r in h])
            for a, b in zip(got["cuda"][0], got["vectorized"][0]):
                close(a, b, np.float32, scale=4, what="parameters after 2 epochs")
            for (la, aa), (lb, ab) in zip(got["cuda"][1], got["vectorized"][1]):
                assert abs(la - lb) <= 1e-5 * max(1.0, abs(lb)), (la, lb)
                assert aa == ab or (aa != aa and ab != ab), (aa, ab)
    return time.perf_counter() - t0


def device_checks(dt, IMPLS, cuda):
    """Raw kernels and the public API with device arrays in and out."""
    name = np.dtype(dt).name
    N, C, K = 3, 7, 5
    D = cuda.to_device
    X, W, b = arr((N, C), dt), arr((K, C), dt), arr(K, dt)
    Z = arr((N, K), dt)
    H = arr((N, C), dt, 0, 1)
    y = rng.integers(0, K, N)
    Y01 = arr((N, K), dt, 0, 1)

    def dev_out(shape):
        return cuda.device_array(shape, dt)

    def host(d):
        assert isinstance(d, type(D(np.zeros(1)))), f"not a device array: {type(d).__name__}"
        return d.copy_to_host()

    cases = {
        "linear": lambda f: (f(D(X), D(W), D(b), o := dev_out((N, K))), o),
        "linear_sigmoid": lambda f: (f(D(X), D(W), D(b), o := dev_out((N, K))), o),
        "softmax": lambda f: (f(D(Z), o := dev_out((N, K))), o),
        "log_softmax": lambda f: (f(D(Z), o := dev_out((N, K))), o),
        "sigmoid": lambda f: (f(D(Z.reshape(-1)), o := dev_out(N * K)), o),
        "sigmoid_backward": lambda f: (f(D(Z.reshape(-1)), D(Y01.reshape(-1)),
                                         o := dev_out(N * K)), o),
        "hidden_delta": lambda f: (f(D(Z), D(W), D(H), o := dev_out((N, C))), o),
    }
    refs = {
        "linear": (ref.linear(X, W, b), C), "linear_sigmoid": (ref.linear_sigmoid(X, W, b), C),
        "softmax": (ref.softmax(Z), 1), "log_softmax": (ref.log_softmax(Z), 1),
        "sigmoid": (ref.sigmoid(Z).reshape(-1), 1),
        "sigmoid_backward": (ref.sigmoid_backward(Z, Y01).reshape(-1), 1),
        "hidden_delta": (ref.hidden_delta(Z, W, H), K),
    }
    for op, run in cases.items():
        @check(op, f"{name} device arrays, raw kernel")
        def _():
            _, o = run(IMPLS[op]["cuda"])
            want, sc = refs[op]
            close(host(o), want, dt, scale=sc, what=op)

    @check("linear_backward", f"{name} device arrays, raw kernel")
    def _():
        dW, db, dX = dev_out((K, C)), dev_out(K), dev_out((N, C))
        IMPLS["linear_backward"]["cuda"](D(Z), D(X), D(W), dW, db, dX)
        for g, w, nm in zip((dW, db, dX), ref.linear_backward(Z, X, W), "dW db dX".split()):
            close(host(g), w, dt, scale=K, what=nm)

    for op in ("softmax_cross_entropy_grad", "sigmoid_bce_grad", "sigmoid_mse_grad"):
        @check(op, f"{name} device arrays, raw kernel")
        def _():
            tgt = y.astype(np.intp) if op.startswith("softmax") else Y01
            dZ = dev_out((N, K))
            L = IMPLS[op]["cuda"](D(Z), D(tgt), dZ)
            L0, dZ0 = getattr(ref, op)(Z, tgt)
            close(L, L0, dt, scale=4, what="loss")
            close(host(dZ), dZ0, dt, what="dZ")

    @check("softmax_cross_entropy", f"{name} device arrays, raw kernel")
    def _():
        L = IMPLS["softmax_cross_entropy"]["cuda"](D(Z), D(y.astype(np.intp)))
        close(L, ref.softmax_cross_entropy(Z, y), dt, scale=4, what="loss")

    @check("sgd_update", f"{name} device arrays, raw kernel")
    def _():
        w, g, v = arr(11, dt), arr(11, dt), arr(11, dt)
        w_ref, v_ref = ref.sgd_update(w, g, 0.1, 0.9, v, 0.01, 0.05, False)
        dw, dv = D(w), D(v)
        IMPLS["sgd_update"]["cuda"](dw, D(g), 0.1, 0.9, dv, 0.01, 0.05, False)
        close(host(dw), w_ref, dt, scale=4, what="param")
        close(host(dv), v_ref, dt, scale=4, what="velocity")

    public_device_checks(dt, cuda, host, X, W, b, Z, y)


def public_device_checks(dt, cuda, host, X, W, b, Z, y):
    """The public API with device arrays: checked without a copy, outputs allocated on the
    device (no host round trip: results are device arrays)."""
    name = np.dtype(dt).name
    D = cuda.to_device
    N, K = Z.shape
    H = arr(X.shape, dt, 0, 1)
    tag = f"{name} device arrays, public API"

    @check("linear", tag)
    def _():
        close(host(fastnn.linear(D(X), D(W), None, impl="cuda")), ref.linear(X, W, 0 * b), dt,
              scale=X.shape[1], what="Z")

    @check("linear_sigmoid", tag)
    def _():
        close(host(fastnn.linear_sigmoid(D(X), D(W), D(b), impl="cuda")),
              ref.linear_sigmoid(X, W, b), dt, scale=X.shape[1], what="H")

    @check("softmax", tag)
    def _():
        close(host(fastnn.softmax(D(Z), impl="cuda")), ref.softmax(Z), dt, what="P")
        d = D(Z)
        assert fastnn.softmax(d, out=d, impl="cuda") is d
        close(host(d), ref.softmax(Z), dt, what="P in place")
        try:
            fastnn.softmax(D(Z), impl="jit")
        except TypeError as exc:
            assert "impl='cuda'" in str(exc), exc
        else:
            raise AssertionError("a device array with impl='jit' was accepted")

    @check("log_softmax", tag)
    def _():
        close(host(fastnn.log_softmax(D(Z[None]), impl="cuda"))[0], ref.log_softmax(Z), dt,
              what="logP (3-D)")

    @check("softmax", f"{tag}: axis other than the last, reduction, ignore_index refused")
    def _():
        close(host(fastnn.softmax(D(Z), Z.ndim - 1, impl="cuda")), ref.softmax(Z), dt, what="P")
        for call, msg in ((lambda: fastnn.softmax(D(Z), 0, impl="cuda"), "last axis only"),
                          (lambda: fastnn.softmax_cross_entropy(D(Z), D(y), reduction="sum",
                                                                impl="cuda"), "take the defaults")):
            try:
                call()
            except ValueError as exc:
                assert msg in str(exc), exc
            else:
                raise AssertionError(f"no ValueError ({msg})")

    @check("sigmoid", tag)
    def _():
        close(host(fastnn.sigmoid(D(Z), impl="cuda")), ref.sigmoid(Z), dt, what="H")

    @check("sigmoid_backward", tag)
    def _():
        Hz = arr(Z.shape, dt, 0, 1)
        close(host(fastnn.sigmoid_backward(D(Z), D(Hz), impl="cuda")),
              ref.sigmoid_backward(Z, Hz), dt, what="dZ")

    @check("softmax_cross_entropy", tag)
    def _():
        close(fastnn.softmax_cross_entropy(D(Z), D(y), impl="cuda"),
              ref.softmax_cross_entropy(Z, y), dt, scale=4, what="L")
        try:
            fastnn.softmax_cross_entropy(D(Z), D(np.array([0, K, 1][:N])), impl="cuda")
        except ValueError as exc:
            assert f"got {K} at index 1" in str(exc), exc
        else:
            raise AssertionError("label K accepted")

    @check("softmax_cross_entropy_grad", tag)
    def _():
        L, dZ = fastnn.softmax_cross_entropy_grad(D(Z), D(y), impl="cuda")
        L0, dZ0 = ref.softmax_cross_entropy_grad(Z, y)
        close(L, L0, dt, scale=4, what="L")
        close(host(dZ), dZ0, dt, what="dZ")

    for opname in ("sigmoid_bce_grad", "sigmoid_mse_grad"):
        @check(opname, tag)
        def _():
            Y = arr(Z.shape, dt, 0, 1)
            J, dZ = getattr(fastnn, opname)(D(Z), D(Y), impl="cuda")
            J0, dZ0 = getattr(ref, opname)(Z, Y)
            close(J, J0, dt, scale=4, what="loss")
            close(host(dZ), dZ0, dt, what="dZ")

    @check("linear_backward", tag)
    def _():
        dZ = arr((X.shape[0], W.shape[0]), dt)
        got = fastnn.linear_backward(D(dZ), D(X), D(W), impl="cuda")
        for g, w, nm in zip(got, ref.linear_backward(dZ, X, W), "dW db dX".split()):
            close(host(g), w, dt, scale=8, what=nm)

    @check("hidden_delta", tag)
    def _():
        dZ = arr((X.shape[0], W.shape[0]), dt)
        close(host(fastnn.hidden_delta(D(dZ), D(W), D(H), impl="cuda")),
              ref.hidden_delta(dZ, W, H), dt, scale=8, what="delta")

    @check("sgd_update", tag)
    def _():
        w, g, v = arr((3, 4), dt), arr((3, 4), dt), arr((3, 4), dt)
        w_ref, v_ref = ref.sgd_update(w, g, 0.1, 0.9, v, 0.01, 0.05, True)
        dw, dv = D(w), D(v)
        assert fastnn.sgd_update(dw, D(g), 0.1, momentum=0.9, velocity=dv, weight_decay=0.01,
                                 l1=0.05, nesterov=True, impl="cuda") is dw
        close(host(dw), w_ref, dt, scale=4, what="param")
        close(host(dv), v_ref, dt, scale=4, what="velocity")


if __name__ == "__main__":
    wall = main()
    print(json.dumps({"wall_s": round(wall, 2), "impls": list(fastnn.impls()),
                      "ops": {k: dict(v) for k, v in REPORT.items()}}))
