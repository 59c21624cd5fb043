"""create_model / replace_pool: the official wiring per family, on tiny timm configurations."""

import pytest
import timm
import torch
from torch import nn

from simpool import SimPool, attention_maps, create_model, replace_pool
from simpool.models import pool_slot
from simpool.pooling import Pool
from tests.conftest import TINY_VIT

TINY = {
    "resnet18": {},
    "convnext_atto": {},
    "vit_tiny_patch16_224": {**TINY_VIT, "depth": 2},
    "deit_tiny_patch16_224": TINY_VIT,
}


def tiny(name, pool="simpool", num_classes=5, **kwargs):
    torch.manual_seed(0)
    return create_model(name, pool=pool, num_classes=num_classes, **TINY[name], **kwargs).eval()


@pytest.fixture
def images():
    return torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("name", sorted(TINY))
def test_shapes_and_pre_logits(name, images):
    model = tiny(name)
    assert model(images).shape == (2, 5)
    features = model.forward_head(model.forward_features(images), pre_logits=True)
    assert features.shape == (2, model.num_features)
    assert isinstance(pool_slot(model).pool, SimPool)
    assert model(images[:1]).shape == (1, 5)  # batch size 1 keeps its batch dimension


def test_vit_has_no_class_token_nor_its_position_slot():
    model = tiny("vit_tiny_patch16_224")
    assert model.cls_token is None and model.num_prefix_tokens == 0
    assert model.pos_embed.shape == (1, 16, 32)  # 4x4 patches, no slot for a CLS token
    baseline = tiny("vit_tiny_patch16_224", pool="default")
    assert baseline.cls_token is not None and baseline.pos_embed.shape == (1, 17, 32)
    assert pool_slot(baseline) is None


def test_vit_wiring_final_norm_pool_layernorm_head(images):
    model = tiny("vit_tiny_patch16_224")
    tokens = model.forward_features(images)  # blocks -> final norm: (B, N, C)
    pool = pool_slot(model).pool
    expected = model.head(model.fc_norm(pool(tokens)))
    assert isinstance(model.norm, nn.LayerNorm) and isinstance(model.fc_norm, nn.LayerNorm)
    torch.testing.assert_close(model(images), expected)
    assert pool.gamma == 1.25  # the paper's default for transformers


def test_resnet_wiring_pool_then_classifier(images):
    model = tiny("resnet18")
    pool = pool_slot(model).pool
    torch.testing.assert_close(model(images), model.fc(pool(model.forward_features(images))))
    assert pool.gamma == 2.0  # the paper's default for CNNs


def test_convnext_wiring_pool_then_head_norm_then_classifier(images):
    model = tiny("convnext_atto")
    pool = pool_slot(model).pool
    pooled = pool(model.forward_features(images))  # (B, C)
    expected = model.head.fc(model.head.norm(pooled[..., None, None]).flatten(1))
    torch.testing.assert_close(model(images), expected)


@pytest.mark.parametrize("name", ["resnet18", "convnext_atto", "vit_tiny_patch16_224"])
def test_reset_classifier_keeps_the_pool(name, images):
    model = tiny(name)
    pool = pool_slot(model).pool
    model.reset_classifier(7)
    assert pool_slot(model).pool is pool
    assert model(images).shape == (2, 7)
    model.reset_classifier(0)
    assert model(images).shape == (2, model.num_features)
    with pytest.raises(ValueError, match="replace_pool"):
        model.reset_classifier(3, global_pool="avg")


def test_pool_kwargs_and_explicit_no_gamma():
    model = create_model("resnet18", pool_kwargs={"gamma": None, "num_heads": 4}, num_classes=3)
    pool = pool_slot(model).pool
    assert pool.gamma is None and pool.num_heads == 4


def test_replace_pool_on_an_existing_timm_model(images):
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=4).eval()
    replace_pool(model, "simpool", gamma=2.0)
    assert model(images).shape == (2, 4)
    vit = timm.create_model("vit_tiny_patch16_224", num_classes=4, **TINY["vit_tiny_patch16_224"]).eval()
    # the CLS token stays in the encoder and is ignored by the pool, and a warning says so
    with pytest.warns(UserWarning) as record:
        replace_pool(vit, SimPool(32, gamma=1.25))
    assert [str(w.message) for w in record] == [
        "replace_pool: VisionTransformer keeps its CLS token in the encoder (the pool ignores it); build it with "
        "simpool.create_model for a ViT without one, as the paper trains"
    ]
    assert vit(images).shape == (2, 4)
    assert attention_maps(vit, images, source="pool").shape == (2, 4, 4)


def test_errors_name_what_works():
    with pytest.raises(ValueError, match="resnet.*convnext.*vit"):
        create_model("crossvit_tiny_240")  # a family that cannot work (efficientnet now does)
    with pytest.raises(ValueError, match="valid pools"):
        create_model("resnet18", pool="nope")
    with pytest.raises(ValueError, match="unknown timm model"):
        create_model("resnet_that_does_not_exist")
    with pytest.raises(ValueError, match="class_token"):
        create_model("vit_tiny_patch16_224", class_token=True)
    with pytest.raises(ValueError, match="expects 512"):
        replace_pool(timm.create_model("resnet18"), SimPool(64))


def test_pool_and_timm_arguments_are_checked_by_name():
    # before: pool="default" dropped pool_kwargs silently; a misspelt keyword was a TypeError traceback
    with pytest.raises(ValueError) as error:
        create_model("resnet18", pool="default", pool_kwargs={"gamma": 2.0})
    assert str(error.value) == (
        "pool='default' (timm's own pooling) takes no pool_kwargs, got ['gamma']: name a simpool pool, or leave "
        "them out"
    )
    with pytest.raises(ValueError) as error:
        create_model("resnet18", pool="gem", pool_kwargs={"q": 3})
    assert str(error.value) == "pool 'gem' (pool_kwargs) takes no argument 'q'; valid: p, learnable, eps"
    with pytest.raises(ValueError) as error:
        create_model("resnet18", pool="gap", pool_kwargs={"q": 3})
    assert str(error.value) == "pool 'gap' (pool_kwargs) takes no argument 'q'; valid: none"
    with pytest.raises(
        ValueError, match="^timm's ResNet \\(model kwargs\\) takes no argument 'layerz'; valid: block, layers,"
    ):
        create_model("resnet18", pool="simpool", layerz=(1, 1, 1, 1))


class TwoVectors(Pool):
    """A k = 2 test pool: the mean and the max of the tokens."""

    num_vectors = 2

    def __init__(self, dim):
        super().__init__()
        self.out_features = dim

    def forward(self, x, return_attention=False):
        tokens = x.flatten(2).transpose(1, 2) if x.ndim == 4 else x
        return torch.stack([tokens.mean(1), tokens.amax(1)], dim=1)  # (B, 2, C)


@pytest.mark.parametrize("name", ["resnet18", "convnext_atto", "vit_tiny_patch16_224"])
def test_k_vectors_classify_by_the_maximum_logit(name, images):
    model = tiny(name, pool="default")
    if name.startswith("vit"):
        model = tiny(name)
    replace_pool(model, TwoVectors(model.num_features))
    logits = model(images)
    features = model.forward_head(model.forward_features(images), pre_logits=True)
    assert logits.shape == (2, 5) and features.shape == (2, 2, model.num_features)
    classifier = model.get_classifier()
    per_vector = classifier(features)  # the hook takes the maximum over the 2 vectors
    manual = torch.stack(
        [torch.nn.functional.linear(features[:, i], classifier.weight, classifier.bias) for i in (0, 1)]
    )
    torch.testing.assert_close(per_vector, manual.amax(0))
    torch.testing.assert_close(logits, manual.amax(0))
    model.reset_classifier(3)
    assert model(images).shape == (2, 3)
