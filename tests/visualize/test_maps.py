"""Every map of a model at any input size (models built to fit a checkpoint: tests/models/test_loading.py)."""

import pytest
import torch

from simpool.visualize import compute_maps, map_sources, set_image_size


@pytest.fixture
def tiny(tiny_vit):
    """``tiny(pool)``: the shared tiny ViT with two blocks and 3 classes, seeded, in eval mode."""

    def build(pool):
        torch.manual_seed(0)
        return tiny_vit(pool, num_classes=3, depth=2).eval()

    return build


def test_sources_of_cls_and_simpool_vits(tiny, tiny_resnet):
    assert list(map_sources(tiny("default"))) == ["cls", "cls_head1", "cls_head2", "cls_block1", "cls_block2"]
    assert list(map_sources(tiny("simpool"))) == ["pool"]
    with pytest.raises(ValueError, match="no attention map"):
        map_sources(tiny_resnet(pool="default"))


@pytest.mark.parametrize("size, grid", [(32, 4), (64, 8), (48, 6)])
def test_any_input_size(size, grid, tiny):
    model = set_image_size(tiny("default"), size)
    maps = compute_maps(model, torch.randn(2, 3, size, size))
    assert all(m.shape == (2, grid, grid) for m in maps.values())
    # the CLS map is the last block's and the mean of its heads; the CLS token's attention to the patches
    # is its softmax row without the CLS-to-CLS entry, so each map sums to less than 1
    torch.testing.assert_close(maps["cls"], maps["cls_block2"])
    torch.testing.assert_close(maps["cls"], (maps["cls_head1"] + maps["cls_head2"]) / 2)
    for m in maps.values():
        assert ((m.sum((1, 2)) > 0) & (m.sum((1, 2)) < 1)).all()
    simpool_maps = compute_maps(set_image_size(tiny("simpool"), size), torch.randn(2, 3, size, size))
    assert simpool_maps["pool"].shape == (2, grid, grid)
    torch.testing.assert_close(simpool_maps["pool"].sum((1, 2)), torch.ones(2))  # SimPool's a is a softmax


def test_cnn_with_simpool_has_a_2d_map(tiny_resnet):
    model = tiny_resnet().eval()  # resnet18 with SimPool
    maps = compute_maps(set_image_size(model, 96), torch.randn(1, 3, 96, 96))
    assert list(maps) == ["pool"] and maps["pool"].shape == (1, 3, 3)  # stride 32
