"""attention_maps: the pool's map and the CLS token's, against independent computations."""

import pytest
import torch

from simpool import attention_maps
from simpool.models import cls_attention_all, pool_slot

VIT = dict(depth=2, num_classes=3)  # over the shared tiny ViT


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 32, 32)


def test_pool_source_is_simpools_attention_on_the_features(images, tiny_resnet):
    torch.manual_seed(0)
    model = tiny_resnet(num_classes=3).eval()
    maps = attention_maps(model, images, source="pool")
    _, expected = pool_slot(model).pool(model.forward_features(images), return_attention=True)
    assert maps.shape == (2, 1, 1)  # 32 px through a stride-32 ResNet
    torch.testing.assert_close(maps, expected)
    big = torch.randn(1, 3, 96, 160)
    assert attention_maps(model, big).shape == (1, 3, 5)


def test_pool_source_on_vit_tokens_is_on_the_patch_grid(images, tiny_vit):
    torch.manual_seed(0)
    model = tiny_vit(**VIT).eval()
    maps = attention_maps(model, images)  # auto: the pool's
    _, expected = pool_slot(model).pool(model.forward_features(images), return_attention=True)  # (B, N)
    torch.testing.assert_close(maps, expected.reshape(2, 4, 4))
    torch.testing.assert_close(maps.sum((1, 2)), torch.ones(2))
    assert not pool_slot(model).record_attention  # recording switched off again


def _reference_cls_attention(model, images, block):
    """The attention matrix of the unfused timm path, read at its dropout: (B, heads, T, T)."""
    attn = model.blocks[block].attn
    attn.fused_attn = False
    seen = {}
    handle = attn.attn_drop.register_forward_hook(lambda module, args, out: seen.setdefault("a", args[0]))
    model.forward_features(images)
    handle.remove()
    return seen["a"]


def test_cls_sources_match_timms_attention_matrix(images, tiny_vit):
    torch.manual_seed(0)
    model = tiny_vit(pool="default", **VIT).eval()
    with torch.no_grad():
        reference = _reference_cls_attention(model, images, -1)[:, :, 0, 1:]  # CLS row, to patches: (B, heads, N)
        first = _reference_cls_attention(model, images, 0)[:, :, 0, 1:]
    torch.testing.assert_close(attention_maps(model, images), reference.mean(1).reshape(2, 4, 4))
    torch.testing.assert_close(attention_maps(model, images, "cls"), reference.mean(1).reshape(2, 4, 4))
    torch.testing.assert_close(attention_maps(model, images, "cls_block", block=0), first.mean(1).reshape(2, 4, 4))
    torch.testing.assert_close(attention_maps(model, images, "cls_head", head=1), reference[:, 1].reshape(2, 4, 4))


def test_all_blocks_in_one_pass_equal_the_per_block_maps(images, tiny_vit):
    torch.manual_seed(0)
    model = tiny_vit(pool="default", **VIT).eval()
    everything = cls_attention_all(model, images)  # (B, L, heads, h, w)
    assert everything.shape == (2, 2, 2, 4, 4)
    for block in (0, 1):
        with torch.no_grad():  # timm's own attention matrix of that block: CLS row, to the patches
            reference = _reference_cls_attention(model, images, block)[:, :, 0, 1:].reshape(2, 2, 4, 4)
        torch.testing.assert_close(everything[:, block], reference)  # (B, heads, h, w)
        block_mean = attention_maps(model, images, "cls_block", block=block)
        torch.testing.assert_close(everything[:, block].mean(1), block_mean)


def test_sources_that_do_not_apply_are_errors(images, tiny_vit, tiny_resnet):
    vit = tiny_vit(**VIT).eval()
    with pytest.raises(ValueError, match="no CLS token"):
        attention_maps(vit, images, source="cls")
    cnn = tiny_resnet(pool="default", num_classes=3).eval()
    with pytest.raises(ValueError, match="no attention"):
        attention_maps(cnn, images, source="pool")
    with pytest.raises(ValueError, match="valid sources"):
        attention_maps(cnn, images, source="gradcam")
    with pytest.raises(ValueError, match="head index"):
        attention_maps(tiny_vit(pool="default", **VIT), images, source="cls_head")


@pytest.mark.parametrize("source", ["auto", "pool", "cls", "cls_block"])
def test_a_gap_model_says_it_has_no_map_and_which_pool_has_one(images, tiny_resnet, source):
    # every source gives the same answer: none points at another one that fails too
    cnn = tiny_resnet(pool="default", num_classes=3).eval()
    with pytest.raises(ValueError) as error:
        attention_maps(cnn, images, source=source)
    assert str(error.value) == (
        "resnet18 with pool 'default' (timm's GAP) has no attention map: "
        "build it with a pool that has one, e.g. pool='simpool'"
    )


def test_sources_point_only_at_one_the_model_has(images, tiny_vit):
    with pytest.raises(ValueError, match="has no pool attention; use source='cls' or 'auto'"):
        attention_maps(tiny_vit(pool="default", **VIT).eval(), images, source="pool")
    with pytest.raises(ValueError, match="has no CLS token; use source='pool' or 'auto'"):
        attention_maps(tiny_vit(**VIT).eval(), images, source="cls")
