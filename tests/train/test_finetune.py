"""Fine-tuning (``simpool eval finetune``): every weight but the classifier's comes from the checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from simpool.cli import main
from simpool.models import save_checkpoint
from simpool.models.checkpoint import load_pretrained


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


def test_cli_fine_tunes_from_the_checkpoint(tmp_path, tiny_vit, write_image_folder, train_overrides):
    data = tmp_path / "data"
    write_image_folder(data / "train", classes=3, per_class=4, seed=0)
    write_image_folder(data / "val", classes=3, per_class=2, seed=1)
    torch.manual_seed(0)
    pretrained = tiny_vit(num_classes=7)  # another task, 7 classes
    checkpoint = save_checkpoint(pretrained, tmp_path / "pre.safetensors")
    recipe = tmp_path / "finetune.yaml"
    recipe.write_text("model:\n  pool: simpool\ntrain:\n  epochs: 1\n  batch_size: 4\n")
    out = tmp_path / "result.json"
    args = train_overrides(data, tmp_path / "runs", optim__lr=0.0, sched__warmup_lr=0.0, sched__min_lr=0.0)
    command = ["eval", "finetune", "--config", str(recipe), "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*command, *args]) == 0
    result = json.loads(out.read_text())
    assert 0.0 <= result["best_top1"] <= 100.0 and result["checkpoint"] == str(checkpoint)
    final = load_file(tmp_path / "runs" / "run" / "last.safetensors")
    # learning rate 0: the trained backbone is exactly the checkpoint's, with a new 3-way head
    for name, tensor in pretrained.state_dict().items():
        if not name.startswith("head."):
            torch.testing.assert_close(final[name], tensor, msg=name)
    assert final["head.weight"].shape == (3, 32)
