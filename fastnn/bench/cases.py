"""The cases of ``fastnn bench`` (and of the pytest-benchmark suite in ``benches/``).

A :class:`Case` is one operation at one shape (``linear_sigmoid`` at B=256, ...);
:func:`all_cases` lists every one in report order, and :func:`select` keeps those that
``--ops``, ``--sizes`` and ``--quick`` name.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

#: Hidden layer of the linear_sigmoid / linear_backward cases, and the network
#: of the training-step case.
D_IN, D_HID = 784, 128
NET = (784, 100, 10)
#: Samples of the epoch case (MNIST's training set).
EPOCH_N = 60_000
LR = 0.01
SGD_MOMENTUM = dict(momentum=0.9, weight_decay=1e-4, l1=1e-5)


# --- cases ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    """One operation at one shape.

    op: report section (a kernel name, or ``train_step``/``api_overhead``);
    variant: sub-family (``C=10``, ``momentum+wd+l1``, ...), '' if none;
    shape: compact shape text (also the pytest-benchmark group);
    size: the main size (batch rows, or parameters), for ``--sizes`` and the plot;
    params: the shape parameters; quick: part of ``--quick``.
    """
    op: str
    variant: str
    shape: str
    size: int
    params: tuple
    quick: bool = False

    @property
    def id(self) -> str:
        return f"{self.op}|{self.variant}|{self.shape}"

    @property
    def p(self) -> dict:
        return dict(self.params)

    def group(self, dtype: str) -> str:
        v = f"{self.variant} " if self.variant else ""
        return f"{self.op}|{v}{self.shape}|{dtype}"


def _fmt_n(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def all_cases() -> list:
    """Every case, in report order (the definition shared with ``benches/``)."""
    cs = []
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_sigmoid", "", f"X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B in (1, 256)))
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_sigmoid_vs_blas", "", f"X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B == 256))
    for op in ("softmax", "softmax_cross_entropy_grad"):
        for B in (32, 256, 4096, 65536):
            cs.append(Case(op, "C=10", f"Z({B},10)", B, (("shape", (B, 10)),), quick=B in (32, 4096)))
        for B in (256, 4096):
            cs.append(Case(op, "C=1000", f"Z({B},1000)", B, (("shape", (B, 1000)),)))
        if op == "softmax":
            shp = (16, 16, 128, 128)
            cs.append(Case(op, "4-D", "Z(16,16,128,128)", 16 * 16 * 128, (("shape", shp),)))
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_backward", "", f"dZ({B},{D_HID}) X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B in (1, 256)))
    for variant in ("plain", "momentum+wd+l1"):
        for n in (100_000, 1_000_000, 16_000_000):
            cs.append(Case("sgd_update", variant, f"n={_fmt_n(n)}", n, (("n", n),),
                           quick=n in (100_000, 1_000_000)))
    for n in (1_000_000, 16_000_000):
        cs.append(Case("sgd_vs_axpy", "plain", f"n={_fmt_n(n)}", n, (("n", n),),
                       quick=n == 1_000_000))
    for B in (1, 10, 64, 256):
        cs.append(Case("train_step", "", f"B={B} {NET[0]}-{NET[1]}-{NET[2]}", B, (("B", B),),
                       quick=B in (1, 64)))
    for B in (1, 10):
        cs.append(Case("epoch", "", f"batch {B}, {EPOCH_N:,} samples", B, (("B", B), ("N", EPOCH_N))))
    cs.append(Case("api_overhead", "softmax", "Z(1,10)", 1, (("op", "softmax"),), quick=True))
    # tiny inputs: the kernel takes about a microsecond, so the API's own cost shows
    cs.append(Case("api_overhead", "linear_sigmoid", "X(1,16) W(8,16)", 1,
                   (("op", "linear_sigmoid"),), quick=True))
    return cs


CASES = {c.id: c for c in all_cases()}


def parse_size(tok: str) -> Optional[int]:
    """``"256"`` -> 256, ``"100k"`` -> 100000, ``"16M"`` -> 16000000; None if not a size."""
    t = tok.strip()
    mult = {"k": 1000, "K": 1000, "m": 1_000_000, "M": 1_000_000}.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    try:
        return int(float(t) * mult)
    except ValueError:
        return None


def select(ops=None, sizes=None, quick=False) -> list:
    """The cases kept by ``--ops`` (names), ``--sizes`` (sizes like 256 or 1M, or shape
    texts like ``Z(256,10)``, or variants like ``C=1000``) and ``--quick``."""
    out = []
    for c in all_cases():
        if ops and c.op not in ops:
            continue
        if sizes:
            ok = False
            for tok in sizes:
                n = parse_size(tok)
                if (n is not None and n == c.size) or tok in (c.shape, c.variant):
                    ok = True
            if not ok:
                continue
        elif quick and not c.quick:
            continue
        out.append(c)
    return out
