"""A run or an evaluation whose images are mostly unreadable fails in one line (more than half skipped: the
stated threshold ``simpool.data.datasets.MAX_SKIPPED``) instead of reporting a loss of 0 and saving weights."""

from __future__ import annotations

import warnings

import pytest

from simpool.cli.main import main
from simpool.data.datasets import MAX_SKIPPED, check_skipped
from tests.train.conftest import overrides


def test_the_threshold_is_more_than_half():
    assert MAX_SKIPPED == 0.5
    check_skipped(8, 16)  # half: the run goes on
    check_skipped(0, 0)
    with pytest.raises(ValueError) as error:
        check_skipped(9, 16, "training images of the epoch")
    assert str(error.value) == (
        "9 of 16 training images of the epoch were unreadable (more than 50% may not be): the warnings above name "
        "each file; repair or remove them"
    )


def _break(paths) -> None:
    for path in paths:
        path.write_bytes(b"not an image")


@pytest.mark.parametrize("broken", [32, 17])  # all of the epoch's 32 images, most of them
def test_a_run_of_mostly_unreadable_images_fails_and_keeps_no_weights(tiny_data, tmp_path, capsys, broken):
    # before: exit 0, "loss 0.0000" and a best.safetensors
    _break(sorted((tiny_data / "train").rglob("*.png"))[:broken])
    argv = ["train", *overrides(tiny_data, tmp_path / "runs", train__epochs=1, train__batch_size=8)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"simpool train: error: {broken} of 32 training images of the epoch were unreadable (more than 50% may not "
        "be): the warnings above name each file; repair or remove them"
    )
    assert not (tmp_path / "runs" / "run" / "best.safetensors").exists()


def test_a_validation_split_of_mostly_unreadable_images_fails(tiny_data, tmp_path, capsys):
    _break(sorted((tiny_data / "val").rglob("*.png"))[:9])
    argv = ["train", *overrides(tiny_data, tmp_path / "runs", train__epochs=1, train__batch_size=8)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("simpool train: error: 9 of 16 validation images were unreadable")
    )
