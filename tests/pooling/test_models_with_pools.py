"""Pools with k > 1 vectors inside timm models: the classifier scores the maximum of the k logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from simpool.models import create_model, pool_slot

MODELS = {
    "resnet10t": dict(),
    "convnext_atto": dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128)),
    "vit_tiny_patch16_224": dict(img_size=32, patch_size=8, depth=1),
}


@pytest.mark.parametrize("model_name", MODELS)
def test_kmeans_model_classifies_by_max_over_vectors(model_name):
    torch.manual_seed(0)
    model = create_model(model_name, pool="kmeans", num_classes=5, **MODELS[model_name]).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(images)
        assert logits.shape == (2, 5)
        vectors = model.forward_head(model.forward_features(images), pre_logits=True)  # (B, k, C)
        assert vectors.shape == (2, 3, model.num_features)
        classifier = model.get_classifier()
        per_vector = F.linear(vectors, classifier.weight, classifier.bias)  # (B, k, classes)
    torch.testing.assert_close(logits, per_vector.amax(dim=1))
    assert pool_slot(model).pool.num_vectors == 3


@pytest.mark.parametrize("pool", ["cbam"])
def test_pools_train_inside_a_resnet(pool):
    torch.manual_seed(0)
    model = create_model("resnet10t", pool=pool, num_classes=4)
    loss = F.cross_entropy(model(torch.randn(2, 3, 32, 32)), torch.tensor([0, 3]))
    loss.backward()
    assert all(p.grad is not None for p in pool_slot(model).pool.parameters())
