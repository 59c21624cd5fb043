"""``load_model``, the one loader of every command: what it reads from a checkpoint, and what it refuses."""

import warnings

import pytest
import safetensors.torch
import timm
import torch
from timm.models import save_for_hf

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


# --- real checkpoints a user downloads (issue 29): made here from tiny timm models ---------------------------

DINO = dict(img_size=28, patch_size=14, embed_dim=32, depth=1, num_heads=2)  # vit_small_patch14_dinov2, tiny
CLIP = dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2)  # vit_base_patch16_clip_224, tiny


def _timm(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    with torch.no_grad():  # zero-initialised tensors (tokens, LayerScale) random too: every tensor counts
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def _same_outputs(model, reference, size):
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=0, rtol=0)


def test_a_timm_and_a_hugging_face_model_safetensors_load(tmp_path, tiny_vit_kwargs):
    reference = _timm("vit_tiny_patch16_224", num_classes=4, **tiny_vit_kwargs)
    save_for_hf(reference, tmp_path / "hf", safe_serialization=True)  # what timm pushes to the Hub
    safetensors.torch.save_file(reference.state_dict(), tmp_path / "timm.safetensors")
    for path in (tmp_path / "hf" / "model.safetensors", tmp_path / "timm.safetensors"):
        model = load_model("vit_tiny_patch16_224", pool="default", model_kwargs=tiny_vit_kwargs, checkpoint=path)
        assert model.num_classes == 4
        _same_outputs(model, reference, 32)


def test_an_original_dinov2_release_loads_through_timms_filter(tmp_path):
    reference = _timm("vit_small_patch14_dinov2", num_classes=0, **DINO)
    original = dict(reference.state_dict())  # DINOv2's release: timm's names plus its mask token, 2x2 patches
    original["mask_token"] = torch.randn(1, 32)
    torch.save(original, tmp_path / "dinov2_vits14_pretrain.pth")
    arch = {key: value for key, value in DINO.items() if key != "img_size"}  # the size comes from pos_embed
    with pytest.warns(UserWarning, match="checkpoint_filter_fn"):
        model = load_model(
            "vit_small_patch14_dinov2",
            pool="default",
            model_kwargs=arch,
            checkpoint=tmp_path / "dinov2_vits14_pretrain.pth",
        )
    assert tuple(model.patch_embed.img_size) == (28, 28) and model.num_classes == 0
    _same_outputs(model, reference, 28)


def test_an_original_mae_release_loads_from_its_model_entry_without_a_conversion(tmp_path, tiny_vit_kwargs):
    # MAE's release is timm's names under a "model" entry: read_state_dict takes the entry, timm's filter is not needed
    reference = _timm("vit_tiny_patch16_224", num_classes=0, **tiny_vit_kwargs)
    torch.save({"model": reference.state_dict()}, tmp_path / "mae_pretrain_vit_tiny.pth")  # MAE's layout
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no notice: "converted by timm's ...checkpoint_filter_fn" would be one
        model = load_model(
            "vit_tiny_patch16_224",
            pool="default",
            model_kwargs=tiny_vit_kwargs,
            checkpoint=tmp_path / "mae_pretrain_vit_tiny.pth",
        )
    _same_outputs(model, reference, 32)


def test_a_release_timms_filter_cannot_read_is_refused_with_the_filters_error_and_the_mismatch(tmp_path):
    original = dict(_timm("vit_small_patch14_dinov2", num_classes=0, **DINO).state_dict())
    original["mask_token"] = torch.randn(1, 32)  # a DINOv2 release...
    original["patch_embed.proj.weight"] = torch.randn(32, 7)  # ...whose linear patch embedding cannot be a 2x14x14 conv
    torch.save(original, tmp_path / "dinov2_broken.pth")
    arch = {key: value for key, value in DINO.items() if key != "img_size"}
    message = (
        r"^checkpoint .*dinov2_broken\.pth \(not converted by timm's timm\.models\.vision_transformer\."
        r"checkpoint_filter_fn: RuntimeError: shape '\[32, -1, 14, 14\]' is invalid for input of size 224\) does not "
        r"fit the model: 1 tensor\(s\) differ in shape, first patch_embed\.proj\.weight: checkpoint has shape "
        r"\(32, 7\), model has \(32, 3, 14, 14\) \(.*\)$"
    )
    with pytest.raises(ValueError, match=message):
        load_model(
            "vit_small_patch14_dinov2", pool="default", model_kwargs=arch, checkpoint=tmp_path / "dinov2_broken.pth"
        )


def _openai_clip(state: dict) -> dict:
    """A timm CLIP ViT's state dict in OpenAI CLIP's layout (``visual.*``, in_proj, c_fc...), the inverse of timm's
    ``_convert_openai_clip``; the classifier becomes CLIP's projection ``visual.proj`` ``(C, D)``."""
    swaps = [
        ("mlp.fc1", "mlp.c_fc"),
        ("mlp.fc2", "mlp.c_proj"),
        ("attn.qkv.", "attn.in_proj_"),
        ("attn.proj", "attn.out_proj"),
        ("norm_pre", "ln_pre"),
        ("blocks.", "transformer.resblocks."),
        ("patch_embed.proj", "conv1"),
        ("norm1", "ln_1"),
        ("norm2", "ln_2"),
    ]
    out = {}
    for key, value in state.items():
        if key == "head.weight":
            out["visual.proj"] = value.t()
            continue
        if key == "head.bias":
            continue  # CLIP's projection has none (timm's filter gives zeros)
        if key == "cls_token":
            key, value = "class_embedding", value.flatten()
        elif key == "pos_embed":
            key, value = "positional_embedding", value[0]
        elif key.startswith("norm."):
            key = key.replace("norm.", "ln_post.")
        for ours, theirs in swaps:
            key = key.replace(ours, theirs)
        out["visual." + key] = value
    return out


def test_an_original_openai_clip_release_loads_through_timms_filter(tmp_path):
    reference = _timm("vit_base_patch16_clip_224", num_classes=8, **CLIP)
    with torch.no_grad():
        reference.head.bias.zero_()
    torch.save(_openai_clip(reference.state_dict()), tmp_path / "ViT-B-16.pt")
    arch = {key: value for key, value in CLIP.items()}
    model = load_model(
        "vit_base_patch16_clip_224", pool="default", model_kwargs=arch, checkpoint=tmp_path / "ViT-B-16.pt"
    )
    assert model.num_classes == 8  # CLIP's projection, read as the classifier
    _same_outputs(model, reference, 32)
