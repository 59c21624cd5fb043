"""The ADE20K layout: images paired with their annotations by name, in sorted order; gaps are errors."""

import pytest

from simpool.data.ade20k import ade20k_pairs


def test_pairs_by_name_sorted_and_missing_files_named(tmp_path):
    (tmp_path / "images" / "training").mkdir(parents=True)
    (tmp_path / "annotations" / "training").mkdir(parents=True)
    for name in ("b", "a"):
        (tmp_path / "images" / "training" / f"{name}.jpg").touch()
        (tmp_path / "annotations" / "training" / f"{name}.png").touch()
    pairs = ade20k_pairs(tmp_path, "training")
    assert [(i.name, a.name) for i, a in pairs] == [("a.jpg", "a.png"), ("b.jpg", "b.png")]
    (tmp_path / "annotations" / "training" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match="1 annotations missing"):
        ade20k_pairs(tmp_path, "training")
    with pytest.raises(FileNotFoundError, match="no images"):
        ade20k_pairs(tmp_path, "validation")
