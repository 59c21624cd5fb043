"""``simpool eval linear`` end to end: the DINO protocol on images, and the grid of lrs on cached features."""

import json

import pytest

from simpool.cli import main


@pytest.mark.parametrize("mode", [[], ["--cached", "--lrs", "0.001", "1.0"]])
def test_cli_end_to_end(tmp_path, mode, write_image_folder, tiny_vit_args, capsys):
    for seed, (split, count) in enumerate((("train", 4), ("val", 2))):  # a red and a blue class
        write_image_folder(
            tmp_path / split, per_class=count, size=40, seed=seed, colours=[(220, 20, 20), (20, 20, 220)], noise=10
        )
    argv = ["eval", "linear", "--data", str(tmp_path), "--model", "vit_tiny_patch16_224"]
    argv += ["--model-kwargs", *tiny_vit_args]
    argv += ["--epochs", "2", "--resize", "32", "--img-size", "32", "--batch-size", "4", "--workers", "0"]
    argv += ["--device", "cpu", "--no-progress", "--out", str(tmp_path / "l.json"), *mode]
    assert main(argv) == 0
    result = json.loads((tmp_path / "l.json").read_text())
    assert [head["lr"] for head in result["heads"]] == ([0.001, 1.0] if mode else [0.001])
    for head in result["heads"]:
        assert len(head["top1_per_epoch"]) == 2 and head["best_top1"] == max(head["top1_per_epoch"])
        assert head["top1_per_epoch"][head["best_epoch"] - 1] == head["best_top1"]
        assert all(top1 in (0.0, 25.0, 50.0, 75.0, 100.0) for top1 in head["top1_per_epoch"])  # of 4 images
    assert result["best"] == max(result["heads"], key=lambda head: head["best_top1"])
    assert result["cached"] == bool(mode) and result["protocol"] == "linear"
    if mode:  # the learning rates read as given (0.001 was "0.00")
        lrs = [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:4]]
        assert lrs == ["0.001", "1"]
