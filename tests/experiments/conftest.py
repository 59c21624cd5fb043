"""What the experiments' tests share: the marker of tests that render the bench (they need Fashion-MNIST)."""

from __future__ import annotations

import pytest

from simpool.data.fashion_mnist import DEFAULT_DIR

needs_fmnist = pytest.mark.skipif(
    not (DEFAULT_DIR / "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist is not installed"
)
