"""``simpool eval localization`` end to end on wsolevaluation-layout data made in tmp_path: boxes, masks (a bench
export's, OpenImages' with their ignore regions), PxAP and the baselines."""

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from simpool.cli import main
from simpool.data.wsol import WSOLMetadata, scoremap_path, write_wsol_metadata
from simpool.evaluate.localization import max_box_acc_v2


def nested_map():
    m = np.zeros((224, 224))
    m[20:180, 20:180] = 0.5
    m[60:100, 60:100] = 1.0
    return m


def test_scoremaps_folder(tmp_path):
    # two images (ids keep their extension, in class folders): image a's box is the small square at 448x448
    # (rescaled to (60, 60, 99, 99)), image b's the big one; one threshold can't serve both: 50 each
    ids = ["001.Bird/a.jpg", "002.Bird/b.jpg"]
    metadata = WSOLMetadata(
        ids,
        {ids[0]: 0, ids[1]: 1},
        {ids[0]: (448, 448), ids[1]: (224, 224)},
        {ids[0]: np.array([[120, 120, 199, 199]]), ids[1]: np.array([[20, 20, 179, 179]])},
    )
    write_wsol_metadata(tmp_path / "meta", metadata)
    for image_id in ids:
        path = scoremap_path(tmp_path / "maps", image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, nested_map())
    out = tmp_path / "result.json"
    argv = ["eval", "localization", "--scoremaps", str(tmp_path / "maps"), "--metadata", str(tmp_path / "meta")]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["MaxBoxAccV2"] == 50.0 and result["settings"]["num_images"] == 2


def test_missing_scoremap_is_a_clear_error(tmp_path, capsys):
    write_wsol_metadata(tmp_path, WSOLMetadata(["x.jpg"], {"x.jpg": 0}, {"x.jpg": (10, 10)}, {"x.jpg": [[0, 0, 5, 5]]}))
    assert main(["eval", "localization", "--scoremaps", str(tmp_path / "none"), "--metadata", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no score map" in err[0]


@pytest.mark.slow  # a 224-px ViT-Tiny
@pytest.mark.parametrize("pool, source", [("simpool", "pool"), ("default", "cls")])
def test_model_maps(tmp_path, pool, source):
    from simpool.models import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("vit_tiny_patch16_224", pool=pool, num_classes=3)
    save_checkpoint(model, tmp_path / "model.safetensors")
    ids = ["c/one.png", "c/two.png"]
    rng = np.random.default_rng(0)
    for image_id in ids:
        (tmp_path / "data" / "c").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "data" / image_id)
    boxes = {i: np.array([[10, 10, 40, 50]]) for i in ids}
    write_wsol_metadata(
        tmp_path / "meta", WSOLMetadata(ids, dict.fromkeys(ids, 1), dict.fromkeys(ids, (80, 60)), boxes)
    )
    out = tmp_path / "r.json"
    argv = ["eval", "localization", "--metadata", str(tmp_path / "meta"), "--data", str(tmp_path / "data")]
    argv += ["--model", "vit_tiny_patch16_224", "--pool", pool, "--num-classes", "3", "--source", source]
    argv += ["--checkpoint", str(tmp_path / "model.safetensors"), "--save-scoremaps", str(tmp_path / "maps")]
    assert main([*argv, "--out", str(out), "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    saved = [np.load(scoremap_path(tmp_path / "maps", image_id)) for image_id in ids]
    for scoremap in saved:
        assert scoremap.shape == (224, 224) and scoremap.dtype == np.float64
        assert scoremap.max() == 1.0 and scoremap.min() == 0.0
    # the metric on the saved maps (as evaluation.py reads them), the boxes and the (W, H) sizes written above
    expected = max_box_acc_v2(saved, [boxes[i] for i in ids], [(80, 60)] * 2, normalize=False)
    assert result["MaxBoxAccV2"] == pytest.approx(expected["MaxBoxAccV2"])
    assert {k: result[k] for k in expected} == pytest.approx(expected)


SQUARE = np.zeros((224, 224))
SQUARE[56:168, 56:168] = 1  # a centred 112-pixel square
CORNER = np.zeros((224, 224))
CORNER[:40, :40] = 1  # a 40-pixel square in the corner, disjoint from it


def _masks(root, named):
    for path, array in named.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), (255 * array).astype(np.uint8))


def test_a_split_with_masks_gets_pxap_and_the_baselines(tmp_path, capsys):
    # a bench-export layout: metadata/<split>/ with boxes and masks.txt, masks/ beside metadata/. Test image a holds
    # the centred square, b the corner one; the training split's 3 objects are all the centred square
    test_ids, train_ids = ["test/a.png", "test/b.png"], [f"train/{i}.png" for i in range(3)]
    boxes = {test_ids[0]: np.array([[56, 56, 168, 168]]), test_ids[1]: np.array([[0, 0, 40, 40]])}
    boxes.update({i: np.array([[56, 56, 168, 168]]) for i in train_ids})
    for split, ids in (("test", test_ids), ("train", train_ids)):
        metadata = WSOLMetadata(ids, dict.fromkeys(ids, 0), dict.fromkeys(ids, (224, 224)), boxes)
        metadata.masks, metadata.ignore = {i: [i] for i in ids}, dict.fromkeys(ids, "")
        write_wsol_metadata(tmp_path / "metadata" / split, metadata)
    _masks(tmp_path / "masks", {test_ids[0]: SQUARE, test_ids[1]: CORNER, **dict.fromkeys(train_ids, SQUARE)})
    for image_id in test_ids:  # the same map for both images: the centred square
        scoremap_path(tmp_path / "maps", image_id).parent.mkdir(parents=True, exist_ok=True)
        np.save(scoremap_path(tmp_path / "maps", image_id), SQUARE)
    out = tmp_path / "result.json"
    argv = [
        "eval",
        "localization",
        "--scoremaps",
        str(tmp_path / "maps"),
        "--metadata",
        str(tmp_path / "metadata/test"),
    ]
    argv += ["--prior-metadata", str(tmp_path / "metadata/train"), "--baseline-grid", "224", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    # the square boxes a's object at every threshold (IoU 1) and misses b's: 50 at every IoU level. PxAP by hand:
    # at threshold 1 the square in both images, right in a (12,544 pixels) and wrong in b: precision 1/2 at recall
    # 12544 / (12544 + 1600); at threshold 0 every pixel: precision 14144 / (2 x 224^2) at recall 1
    recall = 12544 / 14144
    by_hand = 100 * (0.5 * recall + 14144 / (2 * 224 * 224) * (1 - recall))
    assert result["MaxBoxAccV2"] == 50.0 and result["PxAP"] == pytest.approx(by_hand, rel=1e-12)
    # the training objects' mean is the square: box_prior scores as the maps do; so does the maps' own mean
    for name in ("box_prior", "mean_map/scoremaps"):
        assert result["baselines"][name]["MaxBoxAccV2"] == 50.0
        assert result["baselines"][name]["PxAP"] == pytest.approx(by_hand, rel=1e-12)
    assert list(result["baselines"]) == ["uniform", "centre", "box_prior", "mean_map/scoremaps"]
    assert result["settings"]["mask_root"] == str(tmp_path / "masks")
    assert result["settings"]["box_prior_from"] == str(tmp_path / "metadata/train")
    printed = capsys.readouterr().out
    assert f"PxAP: scoremaps {by_hand:.2f}, the strongest image-independent baseline box_prior {by_hand:.2f}" in printed
    assert printed.splitlines()[0].split() == ["maps", "MaxBoxAccV2", "BoxAcc@30", "BoxAcc@50", "BoxAcc@70", "PxAP"]


def test_openimages_masks_alone_and_their_ignore_region(tmp_path):
    # wsolevaluation's OpenImages layout: localization.txt lists masks; no box, so PxAP alone. The map is 1 on the
    # 100x100 top-left square, half of which (rows 0-49) is the object: precision 5000 / 10000 at recall 1. The
    # ignore region, rows 50-99 x cols 0-49, takes 2500 of the wrong pixels out: precision 5000 / 7500
    mask, ignore, scoremap = np.zeros((224, 224)), np.zeros((224, 224)), np.zeros((224, 224))
    mask[:50, :100], ignore[50:100, :50], scoremap[:100, :100] = 1, 1, 1
    _masks(tmp_path / "data", {"test/c/x_m.png": mask, "test/c/x_ignore.png": ignore})
    meta = tmp_path / "meta"
    write_wsol_metadata(meta, WSOLMetadata(["test/c/x.jpg"], {"test/c/x.jpg": 0}, {"test/c/x.jpg": (224, 224)}))
    scoremap_path(tmp_path / "maps", "test/c/x.jpg").parent.mkdir(parents=True)
    np.save(scoremap_path(tmp_path / "maps", "test/c/x.jpg"), scoremap)
    argv = ["eval", "localization", "--scoremaps", str(tmp_path / "maps"), "--metadata", str(meta), "--no-progress"]
    argv += ["--mask-root", str(tmp_path / "data"), "--no-baselines", "--out", str(tmp_path / "r.json")]
    for ignore_path, expected in (("", 50.0), ("test/c/x_ignore.png", 100 * 5000 / 7500)):
        (meta / "localization.txt").write_text(f"test/c/x.jpg,test/c/x_m.png,{ignore_path}\n")
        assert main(argv) == 0
        result = json.loads((tmp_path / "r.json").read_text())
        assert result["PxAP"] == pytest.approx(expected, rel=1e-12) and "MaxBoxAccV2" not in result


def test_masks_without_a_root_are_a_clear_error(tmp_path, capsys):
    metadata = WSOLMetadata(["x.jpg"], {"x.jpg": 0}, {"x.jpg": (10, 10)}, {"x.jpg": [[0, 0, 5, 5]]})
    metadata.masks = {"x.jpg": ["x.png"]}
    write_wsol_metadata(tmp_path / "meta", metadata)
    assert main(["eval", "localization", "--scoremaps", str(tmp_path), "--metadata", str(tmp_path / "meta")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lists masks: give --mask-root" in err[0]


@pytest.mark.parametrize("img_size", [None, 48])
def test_model_maps_at_the_models_input_size_or_img_size(tmp_path, tiny_vit, tiny_vit_args, img_size):
    # before: images always went in at 224, a traceback for a ViT built for 32 pixels; no --img-size
    from torchvision import transforms

    from simpool import attention_maps
    from simpool.evaluate.features import IMAGENET_MEAN, IMAGENET_STD
    from simpool.evaluate.localization import prepare_scoremaps
    from simpool.models import save_checkpoint
    from simpool.models.loading import set_image_size

    torch.manual_seed(0)
    model = tiny_vit(num_classes=3).eval()
    save_checkpoint(model, tmp_path / "model.safetensors")
    ids = ["c/one.png", "c/two.png"]
    rng = np.random.default_rng(0)
    (tmp_path / "data" / "c").mkdir(parents=True)
    for image_id in ids:
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "data" / image_id)
    boxes = {i: np.array([[10, 10, 40, 50]]) for i in ids}
    write_wsol_metadata(
        tmp_path / "meta", WSOLMetadata(ids, dict.fromkeys(ids, 1), dict.fromkeys(ids, (80, 60)), boxes)
    )
    argv = ["eval", "localization", "--metadata", str(tmp_path / "meta"), "--data", str(tmp_path / "data")]
    argv += ["--model", "vit_tiny_patch16_224", "--model-kwargs", *tiny_vit_args, "--no-baselines", "--device", "cpu"]
    argv += ["--checkpoint", str(tmp_path / "model.safetensors"), "--save-scoremaps", str(tmp_path / "maps")]
    argv += [] if img_size is None else ["--img-size", str(img_size)]
    assert main([*argv, "--out", str(tmp_path / "r.json"), "--no-progress"]) == 0
    side = img_size or 32
    if img_size is not None:
        set_image_size(model, img_size)  # the position embedding resampled, as the command does
    resize = transforms.Compose(
        [transforms.Resize((side, side)), transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    images = torch.stack([resize(Image.open(tmp_path / "data" / i).convert("RGB")) for i in ids])  # (2, 3, S, S)
    with torch.no_grad():
        expected = prepare_scoremaps(attention_maps(model, images, source="pool"))  # (2, 224, 224)
    for image_id, scoremap in zip(ids, expected, strict=True):
        np.testing.assert_allclose(np.load(scoremap_path(tmp_path / "maps", image_id)), scoremap, atol=1e-6)
