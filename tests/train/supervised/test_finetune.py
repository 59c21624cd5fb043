"""Fine-tuning (``simpool eval finetune``): every weight but the classifier's comes from the checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from simpool.cli import main
from simpool.models import save_checkpoint
from simpool.models.checkpoint import load_pretrained
from simpool.train.checkpointing import load_state


def test_load_pretrained_keeps_a_fresh_classifier_and_names_missing_weights(tmp_path, tiny_vit):
    torch.manual_seed(0)
    source = tiny_vit(num_classes=2)
    path = save_checkpoint(source, tmp_path / "pre.safetensors")
    target = tiny_vit(num_classes=5)
    fresh_head = target.head.weight.clone()
    load_pretrained(target, path)
    for name, tensor in source.state_dict().items():
        if not name.startswith("head."):
            torch.testing.assert_close(target.state_dict()[name], tensor, msg=name)
    torch.testing.assert_close(target.head.weight, fresh_head)  # 5 classes now: left as initialised
    partial = {k: v for k, v in source.state_dict().items() if not k.startswith("blocks.0.mlp")}
    save_checkpoint(partial, tmp_path / "partial.safetensors")
    with pytest.raises(ValueError, match="blocks.0.mlp.fc1.weight"):
        load_pretrained(tiny_vit(num_classes=5), tmp_path / "partial.safetensors")


@pytest.fixture
def finetune_data(tmp_path, write_image_folder):
    data = tmp_path / "data"
    write_image_folder(data / "train", classes=3, per_class=4, seed=0)
    write_image_folder(data / "val", classes=3, per_class=2, seed=1)
    return data


def test_cli_fine_tunes_from_the_checkpoint(tmp_path, tiny_vit, finetune_data, train_overrides):
    from simpool.train.supervised.validate import validate_checkpoint

    torch.manual_seed(0)
    pretrained = tiny_vit(num_classes=7)  # another task, 7 classes
    checkpoint = save_checkpoint(pretrained, tmp_path / "pre.safetensors")
    recipe = tmp_path / "finetune.yaml"
    recipe.write_text("model:\n  pool: simpool\ntrain:\n  epochs: 1\n  batch_size: 4\n")
    out = tmp_path / "result.json"
    args = train_overrides(finetune_data, tmp_path / "runs", optim__lr=0.0, sched__warmup_lr=0.0, sched__min_lr=0.0)
    command = ["eval", "finetune", "--config", str(recipe), "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*command, *args]) == 0
    result = json.loads(out.read_text())
    assert result["checkpoint"] == str(checkpoint) and result["epoch"] == 0
    run_dir = tmp_path / "runs" / "run"
    final = load_file(run_dir / "last.safetensors")
    # learning rate 0: the trained backbone is exactly the checkpoint's, with a new 3-way head
    for name, tensor in pretrained.state_dict().items():
        if not name.startswith("head."):
            torch.testing.assert_close(final[name], tensor, msg=name)
    assert final["head.weight"].shape == (3, 32)
    # one epoch: the best top-1 is its top-1, that of the saved weights on the 6 validation images
    metrics = validate_checkpoint(run_dir / "last.safetensors", finetune_data, workers=0)
    assert metrics["images"] == 6 and result["best_top1"] == result["val_top1"] == pytest.approx(metrics["top1"])
    assert load_state(run_dir / "last.pt")["best"] == {"score": result["val_top1"]}


def test_a_missing_checkpoint_is_one_line_before_any_run_folder(tmp_path, finetune_data, train_overrides, capsys):
    missing = tmp_path / "nowhere.safetensors"
    args = train_overrides(finetune_data, tmp_path / "runs", train__epochs=1)
    assert main(["eval", "finetune", "--checkpoint", str(missing), *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"simpool eval: error: no checkpoint at {missing}"
    assert not (tmp_path / "runs").exists()


def test_print_config_shows_the_checkpoint_and_trains_nothing(tmp_path, finetune_data, train_overrides, capsys):
    import yaml

    checkpoint = tmp_path / "pre.safetensors"
    args = train_overrides(finetune_data, tmp_path / "runs", train__epochs=3)
    command = ["eval", "finetune", "--checkpoint", str(checkpoint), "--checkpoint-key", "teacher", "--print-config"]
    assert main([*command, *args]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["checkpoint"] == str(checkpoint) and printed["model"]["checkpoint_key"] == "teacher"
    assert printed["train"]["epochs"] == 3 and not (tmp_path / "runs").exists()
