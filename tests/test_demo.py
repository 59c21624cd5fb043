"""``simpool demo``: the bench comparison end to end on a tiny budget, and its pure helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from simpool.data.bench import SimPoolBench
from simpool.data.fashion_mnist import DEFAULT_DIR
from simpool.evaluate.localization import max_box_acc_v2
from simpool.experiments.demo import (
    EVAL_VARIANTS,
    GATE,
    DemoConfig,
    bench_vit,
    demo_config,
    mask_mass,
    predict,
    train_model,
)

needs_fmnist = pytest.mark.skipif(
    not (DEFAULT_DIR / "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist is not installed"
)


def test_mask_mass_hand_computed():
    # map 1 puts weights 1, 3 on the two masked pixels of 4 (total 1+3+2+2 = 8): 4/8 = 0.5;
    # map 2 is uniform and 1 of its 4 pixels is masked: 0.25; the mean is 0.375
    maps = np.array([[[1.0, 3.0], [2.0, 2.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = np.array([[[True, True], [False, False]], [[True, False], [False, False]]])
    assert mask_mass(maps, masks) == pytest.approx(0.375)


def test_bench_vit_kinds_share_the_backbone():
    config = DemoConfig()
    cls, sim = bench_vit("cls", config), bench_vit("simpool", config)
    assert cls.has_class_token and not getattr(sim, "has_class_token", False)
    x = torch.randn(2, 3, 64, 64)
    assert cls(x).shape == sim(x).shape == (2, 10)
    # same blocks and patch embedding: the two differ only by the CLS token / SimPool + its LayerNorm
    shared = {k: v.shape for k, v in cls.state_dict().items() if k.startswith(("blocks", "patch_embed"))}
    assert shared == {k: v.shape for k, v in sim.state_dict().items() if k.startswith(("blocks", "patch_embed"))}
    with pytest.raises(ValueError, match="kind"):
        bench_vit("gap", config)


def test_config_overrides_and_unknown_keys():
    from simpool.utils import parse_kv

    # --set values are YAML scalars converted to the field's type: "1e-3" (a string to YAML) and 1 (an int)
    config = demo_config("cpu", 2, parse_kv(["lr=1e-3", "bg_correlation=0.2", "epochs=1"]))
    assert (config.seed, config.lr, config.bg_correlation, config.epochs) == (2, 0.001, 0.2, 1.0)
    assert isinstance(config.epochs, float)
    assert demo_config("quick").train_images == 2000  # the preset, then the overrides
    with pytest.raises(ValueError, match="unknown demo setting"):
        demo_config("quick", 0, {"learning_rate": 1})
    with pytest.raises(ValueError, match="unknown demo preset"):
        demo_config("huge")


@pytest.mark.slow
@needs_fmnist
def test_demo_end_to_end_writes_report_and_figure(tmp_path, capsys):
    from simpool.cli import main

    torch.set_num_threads(1)
    out = tmp_path / "demo"
    tiny = ["train_images=256", "epochs=1", "batch_size=64", "eval_images=40", "figure_images=2", "depth=1"]
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", "--set", *tiny]) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["results"]) == {"cls", "simpool"}
    for result in report["results"].values():
        for key in ("acc_original", "acc_mixed_same", "acc_mixed_rand", "mask_mass"):
            assert 0.0 <= result[key] <= 1.0
        for key in ("MaxBoxAccV2", "BoxAcc@50", "CorLoc"):  # percent, as wsolevaluation and LOST report them
            assert 0.0 <= result[key] <= 100.0
        assert result["bg_gap"] == pytest.approx(result["acc_mixed_same"] - result["acc_mixed_rand"])
    assert report["config"]["train_images"] == 256 and report["versions"]["torch"] == torch.__version__
    config = DemoConfig(**report["config"])  # the uniform map's mask mass is the mean mask area of the eval images
    masks = SimPoolBench(config.eval_split, "original", config.bench(), num_images=40).batch(np.arange(40))[3]
    assert report["uniform_mask_mass"] == pytest.approx(float(np.asarray(masks, dtype=np.float64).mean()))
    # the SimPool model retrained from the same seed and scored here: accuracies by hand, the attention's
    # MaxBoxAccV2 by the pure metric, its mask mass as sum_p m_p A_p / sum_p A_p of the bilinearly upsampled map
    result, trained = report["results"]["simpool"], train_model("simpool", config, torch.device("cpu"), progress=False)
    assert result["steps"] == trained["steps"] == 4 and result["loss"] == pytest.approx(trained["loss"])
    for variant in EVAL_VARIANTS:
        data = SimPoolBench(config.eval_split, variant, config.bench(), num_images=40)
        scored = predict(trained["model"], data, torch.device("cpu"), "pool" if variant == "original" else None)
        assert result[f"acc_{variant}"] == pytest.approx(float(np.mean(scored["pred"] == scored["labels"])))
        if variant == "original":
            maps, boxes, masks = scored["maps"], scored["boxes"], scored["masks"]
    boxes = [[box.tolist()] for box in boxes]
    assert result["MaxBoxAccV2"] == pytest.approx(
        max_box_acc_v2(maps, boxes, [(config.image_size,) * 2] * 40)["MaxBoxAccV2"]
    )
    upsampled = torch.nn.functional.interpolate(
        torch.from_numpy(maps).float()[:, None], size=config.image_size, mode="bilinear"
    )
    attention = upsampled[:, 0].double().clamp(min=0).numpy()
    by_hand = ((attention * masks).sum((1, 2)) / attention.sum((1, 2))).mean()
    assert result["mask_mass"] == pytest.approx(by_hand)
    assert result["learned_object"] == (result["acc_mixed_rand"] >= GATE)
    assert (out / "figure.png").stat().st_size > 0
    assert "MaxBoxAccV2" in (out / "report.md").read_text()
    assert "MaxBoxAccV2" in capsys.readouterr().out
