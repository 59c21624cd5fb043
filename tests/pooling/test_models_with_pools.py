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
    # the loss's gradient reaches the pool's parameters: at each parameter's largest component it equals the
    # loss's central difference along that component (float64, so the difference is exact to ~1e-9)
    torch.manual_seed(0)
    model = create_model("resnet10t", pool=pool, num_classes=4).double()
    images, labels = torch.randn(2, 3, 32, 32, dtype=torch.double), torch.tensor([0, 3])

    def loss() -> torch.Tensor:
        return F.cross_entropy(model(images), labels)

    loss().backward()
    step = 1e-6
    for name, parameter in pool_slot(model).pool.named_parameters():
        grad, values = parameter.grad.view(-1), parameter.data.view(-1)
        i = int(grad.abs().argmax())
        with torch.no_grad():
            values[i] += step
            up = loss().item()
            values[i] -= 2 * step
            down = loss().item()
            values[i] += step
        assert grad[i] != 0 and grad[i].item() == pytest.approx((up - down) / (2 * step), rel=1e-4), name
