"""``load_model``, the one loader of every command: what it reads from a checkpoint, and what it refuses."""

import pytest
import torch

from simpool import SimPool
from simpool.models import pool_slot, save_checkpoint
from simpool.models.loading import load_model


@pytest.mark.parametrize("pool", ["simpool", "default"])
def test_auto_pool_infers_pool_classes_and_size(tmp_path, pool, tiny_vit, tiny_vit_kwargs):
    torch.manual_seed(0)
    source = tiny_vit(pool, num_classes=3, depth=2).eval()
    path = save_checkpoint(source, tmp_path / "w.safetensors")
    # only what the name and kwargs cannot say is inferred: pool, num_classes=3, img_size=32 (4x4 patches of 8)
    arch = {key: value for key, value in tiny_vit_kwargs.items() if key != "img_size"} | {"depth": 2}
    model = load_model("vit_tiny_patch16_224", pool="auto", model_kwargs=arch, checkpoint=path)
    assert not model.training
    assert model.num_classes == 3 and tuple(model.patch_embed.img_size) == (32, 32)
    assert model.has_class_token == (pool == "default")
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(model(x), source(x))


def test_a_backbone_checkpoint_builds_no_classifier_and_num_classes_is_obeyed(tmp_path, tiny_vit, tiny_vit_kwargs):
    path = save_checkpoint(tiny_vit(num_classes=0), tmp_path / "backbone.safetensors")
    assert load_model("vit_tiny_patch16_224", model_kwargs=tiny_vit_kwargs, checkpoint=path).num_classes == 0
    path = save_checkpoint(tiny_vit(num_classes=5), tmp_path / "classifier.safetensors")
    assert load_model("vit_tiny_patch16_224", model_kwargs=tiny_vit_kwargs, checkpoint=path).num_classes == 5
    with pytest.raises(ValueError, match=r"head\.weight: checkpoint has shape \(5, 32\), model has \(7, 32\)"):
        load_model("vit_tiny_patch16_224", model_kwargs=tiny_vit_kwargs, checkpoint=path, num_classes=7)


def test_without_a_checkpoint_auto_is_simpool_and_there_is_no_classifier(tiny_vit_kwargs):
    model = load_model("vit_tiny_patch16_224", pool="auto", model_kwargs=tiny_vit_kwargs)
    assert type(model.head).__name__ == "Identity" and model.num_classes == 0
    assert isinstance(pool_slot(model).pool, SimPool) and not model.training


def test_auto_refuses_a_checkpoint_that_fits_no_pool(tmp_path, tiny_vit_kwargs):
    path = save_checkpoint({"unrelated": torch.zeros(1)}, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match=r"bad\.safetensors: its parameter names fit none of the pools"):
        load_model("vit_tiny_patch16_224", pool="auto", model_kwargs=tiny_vit_kwargs, checkpoint=path)
