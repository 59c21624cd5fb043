"""The generic pool swap (``simpool/models/generic.py``) on tiny configurations of timm families."""

import pytest
import timm
import torch
import torch.nn.functional as F

from simpool import attention_maps, create_model, list_families, replace_pool
from simpool.cli.main import main
from simpool.models import pool_input, pool_slot
from simpool.models.families import UNSUPPORTED, all_families, family_of_name
from simpool.models.generic import FeaturePool

TINY_VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
TINY = {
    "eva02_tiny_patch14_224": dict(TINY_VIT, num_reg_tokens=4),  # tokens: registers, no CLS
    "deit_tiny_distilled_patch16_224": TINY_VIT,  # tokens: CLS + distillation, two heads
    "swin_tiny_patch4_window7_224": dict(img_size=32, embed_dim=16, depths=(1, 1), num_heads=(1, 1), window_size=4),
    "mobilenetv3_small_050": {},  # a map, then conv_head after the pool
    "test_efficientnet": {},
    "levit_128s": dict(img_size=32),  # tokens without prefix, two heads
}


def tiny(name, pool="simpool", num_classes=3, **kwargs):
    torch.manual_seed(0)
    return create_model(name, pool=pool, num_classes=num_classes, **TINY[name], **kwargs).eval()


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("name", sorted(TINY))
def test_logits_pre_logits_reset_and_maps(name, images):
    model = tiny(name)
    pool = pool_slot(model).pool
    assert isinstance(pool_slot(model), FeaturePool)
    assert model(images).shape == (2, 3)
    features = model.forward_head(model.forward_features(images), pre_logits=True)
    assert features.shape == (2, model.head_hidden_size)
    model.reset_classifier(7)
    assert pool_slot(model).pool is pool and model(images).shape == (2, 7)
    maps = attention_maps(model, images)
    assert maps.ndim == 3 and maps.shape[0] == 2
    torch.testing.assert_close(maps.sum((1, 2)), torch.ones(2))  # SimPool's a: a distribution over locations
    with pytest.raises(ValueError, match="replace_pool"):
        model.reset_classifier(3, global_pool="avg")


@pytest.mark.parametrize(("name", "prefix"), [("eva02_tiny_patch14_224", 4), ("deit_tiny_distilled_patch16_224", 2)])
def test_prefix_tokens_stay_out_of_the_pool_and_the_map(name, prefix, images):
    model = tiny(name)
    assert model.num_prefix_tokens == prefix  # eva: 4 registers and no CLS; DeiT: CLS and distillation
    tokens = model.forward_features(images)  # (B, prefix + 16, C)
    seen = pool_input(model, images)
    torch.testing.assert_close(seen, tokens[:, prefix:])  # (B, 16, C): the 4x4 patches only
    _, expected = pool_slot(model).pool(tokens[:, prefix:], return_attention=True)  # (B, 16)
    torch.testing.assert_close(attention_maps(model, images), expected.reshape(2, 4, 4))


def test_vit_like_models_lose_their_cls_token_when_timm_allows_it():
    eva = tiny("eva02_tiny_patch14_224")
    baseline = create_model("eva02_tiny_patch14_224", pool="default", **TINY["eva02_tiny_patch14_224"])
    assert eva.cls_token is None and baseline.cls_token is not None
    assert eva.pos_embed.shape[1] == baseline.pos_embed.shape[1] - 1  # nor the CLS token's position slot
    deit = tiny("deit_tiny_distilled_patch16_224")  # its head needs both tokens: they stay, out of the pool
    assert deit.cls_token is not None and deit.dist_token is not None


def test_channels_last_maps_are_pooled_as_maps(images):
    model = tiny("swin_tiny_patch4_window7_224")
    features = model.forward_features(images)  # NHWC: (B, h, w, C)
    assert features.shape == (2, 4, 4, model.num_features)
    torch.testing.assert_close(pool_input(model, images), features.permute(0, 3, 1, 2))  # (B, C, h, w)
    _, expected = pool_slot(model).pool(features.permute(0, 3, 1, 2), return_attention=True)  # (B, h, w)
    torch.testing.assert_close(attention_maps(model, images), expected)


def test_conv_head_runs_after_the_pool(images):
    model = tiny("mobilenetv3_small_050")
    features = model.forward_features(images)  # (B, 288, h, w), before conv_head
    seen = {}
    handle = model.conv_head.register_forward_pre_hook(lambda module, args: seen.setdefault("x", args[0]))
    logits = model(images)
    handle.remove()
    pooled = pool_slot(model).pool(features)  # (B, 288)
    torch.testing.assert_close(seen["x"], pooled[:, :, None, None])  # conv_head gets the pooled vector
    expected = model.classifier(model.flatten(model.act2(model.norm_head(model.conv_head(seen["x"])))))
    torch.testing.assert_close(logits, expected)
    assert model.head_hidden_size == 1024 != model.num_features


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "test_efficientnet", "levit_128s"])
def test_gap_gives_timms_own_model(name, images):
    """With pool="gap" the model is timm's average-pooling model: same weights, same logits."""
    ours = tiny(name, pool="gap")
    theirs = timm.create_model(name, num_classes=3, **TINY[name]).eval()
    theirs.load_state_dict(ours.state_dict())  # GAP has no parameters: the same keys
    with torch.no_grad():
        torch.testing.assert_close(ours(images), theirs(images))
        torch.testing.assert_close(
            ours.forward_head(ours.forward_features(images), pre_logits=True),
            theirs.forward_head(theirs.forward_features(images), pre_logits=True),
        )


def test_k_vectors_classify_by_the_maximum_logit(images):
    model = tiny("mobilenetv3_small_050", pool="kmeans")
    with torch.no_grad():
        vectors = model.forward_head(model.forward_features(images), pre_logits=True)  # (B, k, 1024)
        assert vectors.shape == (2, 3, 1024)
        per_vector = F.linear(vectors, model.classifier.weight, model.classifier.bias)  # (B, k, classes)
        torch.testing.assert_close(model(images), per_vector.amax(dim=1))


def test_default_gamma_and_family_lookup():
    assert pool_slot(tiny("mobilenetv3_small_050")).pool.gamma == 2.0  # a CNN
    assert pool_slot(tiny("swin_tiny_patch4_window7_224")).pool.gamma == 1.25  # a transformer
    family = family_of_name("efficientnet_b0")
    assert family.generic and family.name == "efficientnet" and family.classifier_path == "classifier"
    assert family_of_name("deit_tiny_distilled_patch16_224").generic  # two heads: not the official ViT wiring
    assert family_of_name("deit_tiny_patch16_224").name == "vit"


def test_replace_pool_on_a_timm_model(images):
    torch.manual_seed(0)
    model = timm.create_model("levit_128s", num_classes=4, img_size=32).eval()
    replace_pool(model, "simpool", gamma=1.25)
    assert model(images).shape == (2, 4)
    assert model.forward_head(model.forward_features(images), pre_logits=True).shape == (2, 384)


def test_list_families_and_unsupported_errors():
    families = list_families()
    for name in ("resnet", "convnext", "vision_transformer", "deit", "efficientnet", "swin_transformer", "eva"):
        assert name in families
    # the names a user passes, under their family: every one is a timm model of that family
    assert {"resnet50", "resnet18"} <= set(families["resnet"]) and "efficientnet_b0" in families["efficientnet"]
    supported = [m for m in timm.list_models() if family_of_name_module(m) not in UNSUPPORTED]
    assert sum(map(len, families.values())) == len(supported)
    assert all(family_of_name_module(m) == family for family in ("resnet", "deit") for m in families[family])
    assert not set(UNSUPPORTED) & set(families)
    assert set(UNSUPPORTED) <= set(all_families())  # names are timm modules
    assert all("\n" not in reason for reason in UNSUPPORTED.values())  # one-line reasons
    with pytest.raises(ValueError, match="not spatial"):
        create_model("pit_ti_224")
    with pytest.raises(ValueError, match="not one feature tensor"):
        replace_pool(timm.create_model("crossvit_tiny_240"), "gap")


def family_of_name_module(model_name: str) -> str:
    return timm.models.model_entrypoint(model_name).__module__.rpartition(".")[2]


def test_families_command_lists_model_names_to_pass(capsys):
    assert main(["families", "resnet5?", "vit_tiny_patch16_224"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "resnet (the paper's wiring, 1): resnet50",
        "vision_transformer (the paper's wiring, 1): vit_tiny_patch16_224",
    ]
    assert main(["families", "no_such_model*"]) == 2
    assert "no model of a supported family matches ['no_such_model*']" in capsys.readouterr().err


def test_copies_and_checkpoints_keep_the_wiring(images):
    """DINO's teacher is a deep copy; checkpoints name the pool ``feature_pool.pool.*``."""
    import copy

    model = tiny("mobilenetv3_small_050")
    twin = copy.deepcopy(model)
    assert twin.forward_head.__self__ is twin  # the patched head is bound to the copy, not the original
    torch.testing.assert_close(twin(images), model(images))
    assert "feature_pool.pool.q.weight" in model.state_dict()
    other = tiny("mobilenetv3_small_050")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other(images), model(images))


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "swin_tiny_patch4_window7_224", "levit_128s"])
def test_backbones_without_classifier_give_pooled_features(name, images):
    """What ``simpool probe`` loads: ``num_classes=0``, the model gives the pre-logits."""
    model = tiny(name, num_classes=0)
    features = model(images)
    assert features.shape == (2, model.head_hidden_size)
    torch.testing.assert_close(features, model.forward_head(model.forward_features(images), pre_logits=True))


def test_attention_command_loads_a_generic_checkpoint(tmp_path):
    """``simpool attention``'s loader infers the classifier and the pool from a checkpoint."""
    from simpool.models import save_checkpoint
    from simpool.models.loading import load_model
    from simpool.visualize.maps import compute_maps

    name = "swin_tiny_patch4_window7_224"
    save_checkpoint(tiny(name, num_classes=4), tmp_path / "swin.safetensors")
    model = load_model(name, pool="auto", model_kwargs=TINY[name], checkpoint=tmp_path / "swin.safetensors")
    assert model.get_classifier().out_features == 4 and isinstance(pool_slot(model), FeaturePool)
    assert compute_maps(model, torch.randn(1, 3, 32, 32))["pool"].shape == (1, 4, 4)


def test_token_grid_follows_the_image_aspect():
    from simpool.models.attention import token_grid

    assert token_grid(16, (32, 32)) == (4, 4)
    assert token_grid(12, (30, 40)) == (3, 4)  # 3 x 4 tokens of a landscape image
    assert token_grid(12, (40, 30)) == (4, 3)
    assert token_grid(7, (32, 32)) in {(1, 7), (7, 1)}  # a prime: a single row or column


def test_features_that_are_not_maps_or_tokens_are_our_errors():
    from simpool.pooling import GAP

    slot = FeaturePool(GAP(8), channels=8, num_prefix_tokens=1)
    with pytest.raises(ValueError, match="not one feature tensor"):
        slot([torch.randn(2, 5, 8)])
    with pytest.raises(ValueError, match="not spatial"):
        slot(torch.randn(2, 1, 8))  # only the CLS token
    with pytest.raises(ValueError, match="not a map or tokens"):
        slot(torch.randn(2, 8))  # already pooled
    model = tiny("levit_128s")
    with pytest.raises(ValueError, match="patch_valid"):
        model.forward_head(torch.randn(2, 4, model.num_features), patch_valid=torch.ones(2, 4, dtype=torch.bool))


def test_timms_own_pooling_needs_no_supported_family():
    model = create_model("pit_ti_224", pool="default", num_classes=3, img_size=64)  # PiT cannot take a pool
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    with pytest.raises(ValueError, match="unknown timm model"):
        create_model("no_such_model", pool="default")
