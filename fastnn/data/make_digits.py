"""Write ``fastnn/data/digits.npz`` from scikit-learn's copy of the digits data set.

Run once, from the repository root, with scikit-learn installed::

    python fastnn/data/make_digits.py

The file holds two arrays, ``data`` (1797, 64) uint8 pixel counts 0..16 (each row an
8x8 image, row-major) and ``target`` (1797,) uint8 digit labels 0..9, in
scikit-learn's order. :func:`fastnn.datasets.load_digits` reads it; its test
(``tests/test_datasets.py``) checks that the arrays equal ``sklearn.datasets.load_digits``
bit for bit whenever scikit-learn is installed. Source and licence: ``README.md``
beside this script.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def main(path=Path(__file__).with_name("digits.npz")):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = np.asarray(bunch.data)
    target = np.asarray(bunch.target)
    # lossless: integer pixel counts 0..16 and labels 0..9
    assert data.shape == (1797, 64) and target.shape == (1797,)
    assert np.array_equal(data, np.round(data)) and data.min() == 0 and data.max() == 16
    assert target.min() == 0 and target.max() == 9
    np.savez_compressed(path, data=data.astype(np.uint8), target=target.astype(np.uint8))
    with np.load(path, allow_pickle=False) as f:
        assert np.array_equal(f["data"], data) and np.array_equal(f["target"], target)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
