"""The training tests' tiny ImageFolder and their ``key=value`` overrides for a tiny CPU run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import train_overrides as overrides  # noqa: F401  (imported by the training tests)


@pytest.fixture
def tiny_data(tmp_path: Path, write_image_folder) -> Path:
    """``tmp_path/data/{train,val}``: 2 classes, 16 training and 8 validation images per class."""
    root = tmp_path / "data"
    write_image_folder(root / "train", per_class=16, seed=0)
    write_image_folder(root / "val", per_class=8, seed=1)
    return root
