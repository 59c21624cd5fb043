"""``simpool eval localization`` end to end on wsolevaluation-layout data made in tmp_path."""

import json

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
