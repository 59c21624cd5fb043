"""Linear segmentation: mmsegmentation's metrics on hand-made maps, the frozen features, the CLI on tiny folders."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from simpool.cli import main
from simpool.evaluate.segmentation import (
    FrozenPatchFeatures,
    LinearSegmentationHead,
    evaluate_segmentation,
    intersect_and_union,
    reduce_zero_label,
    segmentation_metrics,
)


def test_reduce_zero_label():
    # 0 ("other") is ignored, k becomes k - 1, 255 stays ignored
    assert reduce_zero_label(torch.tensor([0, 1, 150, 255])).tolist() == [255, 0, 149, 255]


def test_hand_made_areas_and_metrics():
    prediction = torch.tensor([[0, 1], [1, 2]])
    label = torch.tensor([[0, 1], [2, 255]])  # the 255 pixel is dropped from both maps
    # kept pixels: prediction (0, 1, 1), label (0, 1, 2): intersect (1, 1, 0), pred (1, 2, 0), label (1, 1, 1)
    areas = intersect_and_union(prediction, label, num_classes=4)
    assert areas.tolist() == [[1, 1, 0, 0], [1, 2, 1, 0], [1, 2, 0, 0], [1, 1, 1, 0]]
    metrics = segmentation_metrics(areas)
    # IoU = (1, 1/2, 0, nan): class 3 absent from both maps is left out -> mIoU = 50
    # Acc = (1, 1, 0, nan) -> mAcc = 200/3; aAcc = 2 correct of 3 labelled pixels
    assert metrics["mIoU"] == pytest.approx(50.0) and metrics["mAcc"] == pytest.approx(200 / 3)
    assert metrics["aAcc"] == pytest.approx(200 / 3) and math.isnan(metrics["IoU"][3])


def test_predicted_but_absent_class_counts_zero_iou_and_nan_acc():
    areas = intersect_and_union(torch.tensor([0, 1]), torch.tensor([0, 0]), num_classes=2)
    metrics = segmentation_metrics(areas)
    # class 0: I 1, U 2 -> IoU 1/2, Acc 1/2; class 1: I 0, U 1 -> IoU 0 (counted), Acc 0/0 (NaN, left out)
    assert metrics["mIoU"] == pytest.approx(25.0) and metrics["mAcc"] == pytest.approx(50.0)


def test_areas_are_summed_over_the_dataset_not_averaged_per_image():
    # image A: 1 pixel of class 0, right; image B: 3 pixels of class 0, predicted 1
    # summed: class 0 I = 1, U = 4; class 1 I = 0, U = 3 -> mIoU = (1/4 + 0) / 2 = 12.5
    # (a mean of per-image mIoUs would give 50: A has IoU 100 on its only class, B 0)
    predictions = [np.array([[0]]), np.array([[1, 1, 1]])]
    labels = [np.array([[0]]), np.array([[0, 0, 0]])]
    assert evaluate_segmentation(predictions, labels, num_classes=2)["mIoU"] == pytest.approx(12.5)
    # with reduce_zero_label the same labels shifted by one give the same answer
    assert evaluate_segmentation(predictions, [x + 1 for x in labels], 2, reduce_zero=True)["mIoU"] == pytest.approx(
        12.5
    )
    with pytest.raises(ValueError, match="differ in shape"):
        intersect_and_union(torch.zeros(2, 2), torch.zeros(2, 3), 2)


DEEPER = {"depth": 2, "dynamic_img_size": True}  # two blocks to concatenate, any image size


def test_frozen_features_concatenate_blocks_and_head_is_a_1x1_conv(tiny_vit):
    model = tiny_vit(num_classes=0, **DEEPER)
    backbone = FrozenPatchFeatures(model, [0, 1])
    features = backbone(torch.randn(2, 3, 32, 48))
    assert features.shape == (2, 64, 4, 6)  # 2 blocks x 32 channels on a 4 x 6 patch grid
    backbone.train()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    head = LinearSegmentationHead(64, 5)
    logits = head(features, (32, 48))
    # at the patch centres' resolution the head is W x + b per location
    direct = (
        torch.einsum("kc,bchw->bkhw", head.conv_seg.weight[:, :, 0, 0], features) + head.conv_seg.bias[:, None, None]
    )
    torch.testing.assert_close(head(features, (4, 6)), direct)
    assert logits.shape == (2, 5, 32, 48)


def test_cli_end_to_end(tmp_path, tiny_vit_kwargs):
    rng = np.random.default_rng(0)
    for split, count in (("training", 3), ("validation", 2)):
        (tmp_path / "images" / split).mkdir(parents=True)
        (tmp_path / "annotations" / split).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
            label = np.zeros((40, 48), np.uint8)
            label[:, 16:] = 1 + (i % 3)  # 0 = other, 1..3 = classes
            Image.fromarray(image).save(tmp_path / "images" / split / f"{i}.jpg")
            Image.fromarray(label).save(tmp_path / "annotations" / split / f"{i}.png")
    model_kwargs = [f"{key}={value}" for key, value in {**tiny_vit_kwargs, **DEEPER}.items()]
    argv = ["eval", "segmentation", "--data", str(tmp_path), "--model", "vit_tiny_patch16_224", "--model-kwargs"]
    argv += model_kwargs + ["--blocks", "0", "1", "--num-seg-classes", "3", "--iterations", "3", "--warmup", "1"]
    argv += ["--img-size", "32", "--lr", "0.01", "--batch-size", "2", "--device", "cpu", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "s.json")]) == 0
    result = json.loads((tmp_path / "s.json").read_text())
    assert 0 <= result["aAcc"] <= 100 and len(result["IoU"]) == 3
    # predictions are scored at 40x48; the labelled pixels are 40x32 of class 0 (image 0) and 40x32 of class 1
    # (image 1): aAcc = sum_c I_c / sum_c L_c = (1280 Acc_0 + 1280 Acc_1) / 2560, the mean of the two, = mAcc
    acc, iou = result["Acc"], result["IoU"]
    assert result["aAcc"] == pytest.approx((acc[0] + acc[1]) / 2) and result["mAcc"] == pytest.approx(result["aAcc"])
    assert result["mIoU"] == pytest.approx(np.nanmean(iou)) and all(iou[c] <= acc[c] + 1e-9 for c in (0, 1))
    # validation holds labels 1 and 2 (classes 0 and 1 after reduce-zero), never label 3: no accuracy for it
    assert math.isnan(result["Acc"][2]) and not any(math.isnan(a) for a in result["Acc"][:2])
