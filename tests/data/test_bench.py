"""The SimPool bench: masks and boxes agree with the pixels, variants keep their definitions, seeds decide."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simpool.data.bench import (
    BACKGROUNDS,
    MASK_THRESHOLD,
    NUM_CLASSES,
    VARIANTS,
    BenchConfig,
    RenderedBench,
    SimPoolBench,
    _corner,
    _tile_box,
    draw_parameters,
)
from simpool.data.fashion_mnist import DEFAULT_DIR

needs_fmnist = pytest.mark.skipif(  # only the tests that render images
    not (DEFAULT_DIR / "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist is not installed"
)

N = 40


@pytest.fixture(scope="module")
def rendered():
    """The first N validation images of every variant: {variant: (images, masks, boxes, labels)}."""
    out = {}
    for variant in VARIANTS:
        data = SimPoolBench("val", variant, num_images=N)
        items = [data.render(i) for i in range(N)]
        out[variant] = tuple(np.stack([item[k] for item in items]) for k in range(3)) + (data.labels,)
    return out


@needs_fmnist
def test_box_is_the_mask_extent(rendered):
    _, masks, boxes, _ = rendered["original"]
    for mask, (x0, y0, x1, y1) in zip(masks, boxes, strict=True):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        # x1, y1 are exclusive: one past the mask's last column and row
        assert (x0, y0, x1, y1) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)


@needs_fmnist
def test_masks_and_boxes_are_shared_by_all_variants(rendered):
    _, masks, boxes, labels = rendered["original"]
    for variant in VARIANTS:
        np.testing.assert_array_equal(rendered[variant][1], masks)
        np.testing.assert_array_equal(rendered[variant][2], boxes)
        np.testing.assert_array_equal(rendered[variant][3], labels)


@needs_fmnist
def test_only_fg_is_black_outside_the_mask_and_the_object_inside(rendered):
    only_fg, masks, _, _ = rendered["only_fg"]
    original = rendered["original"][0]
    assert (only_fg[~masks] == 0).all()
    np.testing.assert_array_equal(only_fg[masks], original[masks])  # the same object pixels
    assert only_fg[masks].max() > MASK_THRESHOLD // 2  # visible: intensity > threshold times a tint >= 0.3


@needs_fmnist
def test_no_fg_is_black_inside_the_mask_and_original_outside(rendered):
    no_fg, masks, _, _ = rendered["no_fg"]
    original = rendered["original"][0]
    assert (no_fg[masks] == 0).all()
    np.testing.assert_array_equal(no_fg[~masks], original[~masks])


@needs_fmnist
def test_only_bg_variants_remove_the_box_and_keep_the_rest(rendered):
    original, _, boxes, _ = rendered["original"]
    blacked, tiled = rendered["only_bg_b"][0], rendered["only_bg_t"][0]
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        inside = np.zeros(original.shape[1:3], dtype=bool)
        inside[y0:y1, x0:x1] = True
        assert (blacked[i][inside] == 0).all()
        np.testing.assert_array_equal(blacked[i][~inside], original[i][~inside])
        np.testing.assert_array_equal(tiled[i][~inside], original[i][~inside])


def test_tile_box_repeats_the_largest_band():
    # a 6x6 background whose columns are numbered; box x in [2, 5), y in [1, 3): the left band (2 columns
    # by 2 rows = 4 pixels) loses to the bottom band (3 rows by 3 columns = 9 pixels), so the box is
    # filled with the rows below it: rows 3, 4 of columns 2..4 tiled upward
    background = np.zeros((6, 6, 3), dtype=np.uint8)
    background[..., 0] = np.arange(6)[None, :]  # column index
    background[..., 1] = np.arange(6)[:, None]  # row index
    out = _tile_box(background, (2, 1, 5, 3))
    np.testing.assert_array_equal(out[1:3, 2:5, 0], [[2, 3, 4], [2, 3, 4]])
    np.testing.assert_array_equal(out[1:3, 2:5, 1], [[3, 3, 3], [4, 4, 4]])


@needs_fmnist
def test_mixed_variants_keep_the_object_and_draw_backgrounds_by_definition(rendered):
    _, masks, _, labels = rendered["original"]
    data = SimPoolBench("val", "original", num_images=N)
    p = data.params
    per_class = len(BACKGROUNDS) // NUM_CLASSES
    assert ((p["bg_same"][:N] % NUM_CLASSES) == labels).all()  # own class's pool: k, k + 10
    assert ((p["bg_next"][:N] % NUM_CLASSES) == (labels + 1) % NUM_CLASSES).all()  # the next class's pool
    assert (p["bg_same"] < per_class * NUM_CLASSES).all()
    for variant in ("mixed_same", "mixed_rand", "mixed_next"):
        np.testing.assert_array_equal(rendered[variant][0][masks], rendered["original"][0][masks])


@pytest.mark.parametrize("correlation", [0.0, 1.0])
def test_background_correlation_extremes(correlation):
    labels = np.arange(2000) % NUM_CLASSES
    p = draw_parameters(labels, BenchConfig(bg_correlation=correlation), "train")
    own = (p["bg_original"] % NUM_CLASSES) == labels
    if correlation == 1.0:
        assert own.all()
    else:  # uniform over 20 backgrounds: 2 of them are in the class's pool, so about 1 in 10
        assert abs(own.mean() - 0.1) < 0.03


@needs_fmnist
def test_determinism_by_seed_and_independence_of_num_images():
    a = SimPoolBench("test", "original", BenchConfig(seed=3), num_images=5)
    b = SimPoolBench("test", "original", BenchConfig(seed=3), num_images=50)
    c = SimPoolBench("test", "original", BenchConfig(seed=4), num_images=5)
    for i in range(5):
        np.testing.assert_array_equal(a.render(i)[0], b.render(i)[0])
    assert any(not np.array_equal(a.render(i)[0], c.render(i)[0]) for i in range(5))


@needs_fmnist
def test_dataset_item_and_batch_agree():
    data = SimPoolBench("val", "mixed_rand", num_images=4)
    image, label, box, mask = data[2]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert label == data.labels[2] and box.shape == (4,) and mask.shape == (64, 64) and mask.dtype == torch.bool
    images, labels, boxes, masks = data.batch([2])
    torch.testing.assert_close(images[0].float() / 255, image)
    assert labels[0] == label and torch.equal(boxes[0].float(), box) and torch.equal(masks[0], mask)


@needs_fmnist
def test_rendered_bench_serves_the_same_batches_from_memory():
    data = SimPoolBench("val", "mixed_same", num_images=7)
    rendered = data.rendered(chunk=3)  # chunks of 3, 3 and 1 images
    assert len(rendered) == 7 and rendered.images.dtype == torch.uint8
    for indices in ([0, 1, 2], [6, 2, 2, 5], np.array([4])):
        for ours, theirs in zip(rendered.batch(indices), data.batch(indices), strict=True):
            assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match="differ in length"):
        RenderedBench(rendered.images, rendered.labels[:3], rendered.boxes, rendered.masks)


@needs_fmnist
def test_size_224_works():
    image, _, box, mask = SimPoolBench("test", "original", BenchConfig(image_size=224), num_images=2)[1]
    assert image.shape == (3, 224, 224) and mask.shape == (224, 224)
    assert 0.45 * 224 - 2 <= max(box[2] - box[0], box[3] - box[1]) <= 0.8 * 224 + 1  # the object's scale


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="valid"), "split"),
        (dict(variant="mixed"), "variant"),
        (dict(num_images=0), "num_images"),
    ],
)
@needs_fmnist
def test_bad_inputs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimPoolBench(**kwargs)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="bg_correlation"):
        BenchConfig(bg_correlation=1.5)
    with pytest.raises(ValueError, match="min_scale"):
        BenchConfig(min_scale=0.9, max_scale=0.5)


def test_missing_fashion_mnist_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        SimPoolBench("train", fashion_mnist_dir=tmp_path)


def test_a_square_may_cross_the_border_by_its_overhang():
    # side 20 in a 64-pixel image with overhang 0.25: 5 pixels may lie past either border, so the corner is uniform
    # over -5 .. 49 (55 positions); overhang 0 keeps it in 0 .. 44
    fractions = np.array([0.0, 0.5, 0.999])
    side = np.full(3, 20)
    assert _corner(fractions, side, 64, 0.25).tolist() == [-5, int(0.5 * 55) - 5, int(0.999 * 55) - 5]
    assert _corner(fractions, side, 64, 0.0).tolist() == [0, 22, 44]
    with pytest.raises(ValueError, match=r"overhang must be in \[0, 0.25\]"):
        BenchConfig(overhang=0.3)


@needs_fmnist
def test_an_object_past_the_border_is_cut_and_so_are_its_mask_and_box():
    config = BenchConfig(overhang=0.25)
    data = SimPoolBench("val", "original", config, num_images=300)
    crossing = [i for i in range(len(data)) if data.params["x"][i] < 0 or data.params["y"][i] < 0]
    assert crossing  # with 300 images, some squares start past the top or left border
    for i in crossing[:5]:
        image, mask, box = data.render(i)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert box.tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1] and box.min() >= 0
        x, y = int(data.params["x"][i]), int(data.params["y"][i])
        side = int(data.params["side"][i])
        assert mask.sum() > 0 and not mask[max(y, 0) + side :, :].any() and not mask[:, max(x, 0) + side :].any()


@pytest.mark.slow
@needs_fmnist
def test_on_the_default_test_split_position_alone_finds_no_object():
    """The bench's promise (chosen on val): a centred Gaussian and the training objects' mean score at most a
    near-uniform map + 5 MaxBoxAccV2 on the test images the demo reports on."""
    from simpool.evaluate.attention_quality import baseline_scores

    config = BenchConfig()
    test = SimPoolBench("test", "original", config, num_images=2000)
    _, _, boxes, masks = test.batch(np.arange(len(test)))
    train = SimPoolBench("train", "original", config, num_images=2000)
    train_masks = train.batch(np.arange(len(train)))[3].numpy()
    sizes = [(config.image_size, config.image_size)] * len(boxes)
    scores = baseline_scores((8, 8), train_masks, [b[None] for b in boxes.numpy()], sizes)
    uniform = scores["uniform"]["MaxBoxAccV2"]
    assert scores["centre"]["MaxBoxAccV2"] <= uniform + 5 and scores["box_prior"]["MaxBoxAccV2"] <= uniform + 5
