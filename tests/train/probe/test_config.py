"""``simpool probe``'s config: every mistake of the grid or the protocol is one line, before any work."""

from __future__ import annotations

import pytest

from simpool.train.probe.config import check_config, resolved_lrs

from .conftest import config_of


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ({"heads": ["linear", "no_such_pool"]}, "unknown head 'no_such_pool'; valid heads: linear,"),
        ({"heads": ["gap", "gap"]}, "a head is named twice"),
        ({"lrs": [0.1, float("inf")]}, r"learning rates \(probe.lrs, --lr\) must be positive finite numbers"),
        ({"opt": "adam"}, "optimizer 'adam'; valid: adamw, lars, sgd"),
        ({"blocks_mode": "max"}, "blocks mode 'max'; valid: mean, concat"),
    ],
)
def test_a_bad_grid_is_one_line(probe, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        check_config(config_of(tmp_path, tmp_path / "run", probe=probe))


def test_a_missing_split_is_named(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="no 'test' split at"):
        check_config(config_of(tmp_path, tmp_path / "run"))


def test_the_default_lr_follows_the_optimizer(tmp_path):
    assert resolved_lrs(config_of(tmp_path, tmp_path / "run", probe={"lrs": []}).probe) == [1e-3]
    assert resolved_lrs(config_of(tmp_path, tmp_path / "run", probe={"lrs": [], "opt": "lars"}).probe) == [0.1]
    assert resolved_lrs(config_of(tmp_path, tmp_path / "run").probe) == [1e-3, 1e-1]
