"""``simpool demo``: the bench comparison end to end on a tiny budget, and its pure helpers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from simpool.data.bench import SimPoolBench
from simpool.data.fashion_mnist import DEFAULT_DIR
from simpool.evaluate.localization import max_box_acc_v2
from simpool.experiments.bench_report import curve_sentences, matched_points, matched_sentence
from simpool.experiments.demo import (
    CURVE_KEYS,
    CURVE_VARIANTS,
    EVAL_VARIANTS,
    GATE,
    DemoConfig,
    bench_vit,
    curve_steps,
    demo_config,
    evaluate_model,
    mask_mass,
    predict,
    train_model,
)
from simpool.models import load_checkpoint

needs_fmnist = pytest.mark.skipif(
    not (DEFAULT_DIR / "train-images-idx3-ubyte.gz").exists(), reason="dataset-fashion-mnist is not installed"
)


def test_mask_mass_hand_computed():
    # map 1 puts weights 1, 3 on the two masked pixels of 4 (total 1+3+2+2 = 8): 4/8 = 0.5;
    # map 2 is uniform and 1 of its 4 pixels is masked: 0.25; the mean is 0.375
    maps = np.array([[[1.0, 3.0], [2.0, 2.0]], [[1.0, 1.0], [1.0, 1.0]]])
    masks = np.array([[[True, True], [False, False]], [[True, False], [False, False]]])
    assert mask_mass(maps, masks) == pytest.approx(0.375)


def test_curve_steps_are_even_and_end_at_the_last_update():
    # k * 15 / 12 for k = 0..12, rounded half to even (2.5 -> 2, 7.5 -> 8, 12.5 -> 12): 13 distinct updates
    assert curve_steps(15, 12) == [0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 14, 15]
    assert curve_steps(4, 12) == [0, 1, 2, 3, 4]  # fewer updates than points: every update
    assert curve_steps(625, 12)[-1] == 625 and len(curve_steps(625, 12)) == 13
    assert curve_steps(10, 0) == []


def test_curve_sentences_from_hand_made_curves():
    def point(step, box, mass, rand):
        keys = ("step", "epoch", "top1_original", "top1_mixed_rand", "MaxBoxAccV2", "mask_mass")
        return dict(zip(keys, (step, step / 10, 0.5, rand, box, mass), strict=True))

    # CLS reaches 40 at update 8 only; SimPool at update 4 (45.0); the point nearest 0.75 * 8 = 6 is update 6 for
    # both: CLS moves 41.0 - 30.0 = +11.0 over the last quarter, SimPool 50.0 - 48.0 = +2.0; only SimPool >= 0.6
    curves = {
        "cls": [
            point(0, 10.0, 0.2, 0.1),
            point(4, 20.0, 0.2, 0.2),
            point(6, 30.0, 0.25, 0.3),
            point(8, 41.0, 0.3, 0.5),
        ],
        "simpool": [
            point(0, 10.0, 0.2, 0.1),
            point(4, 45.0, 0.3, 0.4),
            point(6, 48.0, 0.4, 0.6),
            point(8, 50.0, 0.5, 0.7),
        ],
    }
    first_cls, first_sim, end = curve_sentences(curves, gate=0.6, level=40.0)
    assert first_cls == "CLS attention first reaches MaxBoxAccV2 40 at update 8 of 8 (epoch 0.80, 41.0)."
    assert first_sim == "SimPool attention first reaches MaxBoxAccV2 40 at update 4 of 8 (epoch 0.40, 45.0)."
    assert end == (
        "At the end (update 8, epoch 0.80): CLS MaxBoxAccV2 41.0, mask mass 0.300, mixed_rand top-1 0.500; "
        "SimPool MaxBoxAccV2 50.0, mask mass 0.500, mixed_rand top-1 0.700; over the last quarter of the updates "
        "MaxBoxAccV2 moved +11.0 (CLS) and +2.0 (SimPool), and only SimPool passes the 0.6 gate."
    )
    never = curve_sentences({"cls": curves["cls"]}, gate=0.6, level=45.0)[0]
    assert never == "CLS attention never reaches MaxBoxAccV2 45 in 8 updates (its highest: 41.0 at update 8)."
    assert curve_sentences({}, gate=0.6) == []


def test_matched_points_pick_each_models_first_point_at_the_common_level():
    def point(step, rand, box):
        return {"step": step, "epoch": step / 10, "top1_mixed_rand": rand, "MaxBoxAccV2": box, "mask_mass": box / 100}

    cls = [point(0, 0.1, 10.0), point(4, 0.45, 20.0), point(8, 0.55, 30.0)]
    sim = [point(0, 0.1, 10.0), point(4, 0.5, 40.0), point(8, 0.7, 45.0)]
    # CLS's best is 0.55 < gate 0.6: the level is 0.55; CLS first reaches it at update 8, SimPool at update 8
    # (0.5 at update 4 is below it)
    matched = matched_points({"cls": cls, "simpool": sim}, gate=0.6)
    assert matched["level"] == 0.55 and matched["points"] == {"cls": cls[2], "simpool": sim[2]}
    assert matched_sentence(matched, 0.6) == [
        "At matched accuracy (mixed_rand top-1 >= 0.550, the highest level both reach): CLS at update 8 "
        "(mixed_rand 0.550): MaxBoxAccV2 30.0, mask mass 0.300; SimPool at update 8 (mixed_rand 0.700): "
        "MaxBoxAccV2 45.0, mask mass 0.450."
    ]
    # both pass the gate: the level is the gate, and SimPool's first point above it is taken, not its last
    cls[2]["top1_mixed_rand"], sim[1]["top1_mixed_rand"] = 0.65, 0.62
    matched = matched_points({"cls": cls, "simpool": sim}, gate=0.6)
    assert matched["level"] == 0.6 and matched["points"] == {"cls": cls[2], "simpool": sim[1]}
    assert "the 0.6 gate" in matched_sentence(matched, 0.6)[0]
    assert matched_points({"cls": []}, gate=0.6) is None and matched_sentence(None, 0.6) == []


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
    converge = demo_config("converge")  # 10x the default's updates, scored at 20 points
    assert converge.epochs * converge.train_images == 10 * DemoConfig().epochs * DemoConfig().train_images
    assert converge.curve_points == 20
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
    tiny += ["curve_points=4", "curve_images=24"]
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
    printed = capsys.readouterr().out  # the command's summary
    result, trained = report["results"]["simpool"], train_model("simpool", config, torch.device("cpu"), progress=True)
    assert result["steps"] == trained["steps"] == 4 and result["loss"] == pytest.approx(trained["loss"])
    # with progress on, each curve point is printed as it is measured, with the numbers of report.json
    last = report["curves"]["simpool"][-1]
    progress = capsys.readouterr().out
    assert progress.count("simpool update ") == len(report["curves"]["simpool"])
    assert f"simpool update 4 (epoch 1.00): top-1 original {last['top1_original']:.3f}," in progress
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
    # the saved weights are the trained model's: loaded into a fresh model they give the retrained weights
    assert report["checkpoints"] == {kind: str(out / f"{kind}.safetensors") for kind in ("cls", "simpool")}
    assert f"weights: {out / 'cls.safetensors'}, {out / 'simpool.safetensors'}" in printed
    saved = bench_vit("simpool", config)
    load_checkpoint(saved, report["checkpoints"]["simpool"])
    for name, value in saved.state_dict().items():
        assert torch.equal(value, trained["model"].state_dict()[name]), name
    assert "MaxBoxAccV2" in (out / "report.md").read_text()
    assert "MaxBoxAccV2" in printed

    # the curves: every model, at initialisation and after each of the 4 updates, the keys the issue names
    assert set(report["curves"]) == {"cls", "simpool"} and (out / "curves.png").stat().st_size > 0
    for points in report["curves"].values():
        assert len(points) >= config.curve_points and [p["step"] for p in points] == [0, 1, 2, 3, 4]
        assert all(set(p) == {"step", "epoch", *CURVE_KEYS} for p in points)
        assert points[-1]["epoch"] == pytest.approx(4 * 64 / 256)
    assert report["curve_subset"]["images"] == 24 and 0 < report["curve_fraction"]
    assert report["curve_summary"] and all(sentence in printed for sentence in report["curve_summary"])
    assert "## Curves" in (out / "report.md").read_text()
    matched = report["matched"]  # both models at one mixed_rand level: the first point of each at or above it
    assert matched["level"] <= GATE and set(matched["points"]) == {"cls", "simpool"}
    for kind, point in matched["points"].items():
        assert point in report["curves"][kind] and point["top1_mixed_rand"] >= matched["level"]
    # a point's numbers are an evaluation of that checkpoint: the last one is the retrained final model scored
    # on the curves' 24 images, the first one the untrained model of the same seed
    device, points = torch.device("cpu"), report["curves"]["simpool"]
    last = evaluate_model("simpool", trained["model"], config, device, False, CURVE_VARIANTS, 24)
    torch.manual_seed(config.seed)
    first = evaluate_model("simpool", bench_vit("simpool", config), config, device, False, CURVE_VARIANTS, 24)
    for key, name in CURVE_KEYS.items():
        assert points[-1][key] == pytest.approx(last[name]) and points[0][key] == pytest.approx(first[name])
    # measuring the curves leaves the training unchanged: the same weights without them
    plain = train_model("simpool", dataclasses.replace(config, curve_points=0), device, progress=False)
    assert plain["curves"] == [] and plain["loss"] == trained["loss"]
    for name, value in plain["model"].state_dict().items():
        assert torch.equal(value, trained["model"].state_dict()[name]), name


def test_converge_table_pairs_runs_and_matches_accuracy(tmp_path, capsys):
    import runpy

    table = runpy.run_path(str(Path(__file__).parents[1] / "docs" / "examples" / "converge_table.py"))

    def report(seed, cls_box, sim_box):
        def point(step, rand, box):
            return {"step": step, "epoch": step / 10, "top1_original": 0.9, "top1_mixed_rand": rand,
                    "MaxBoxAccV2": box, "mask_mass": box / 100}  # fmt: skip

        final = {"acc_original": 0.9, "acc_mixed_rand": 0.7, "CorLoc": 50.0, "mask_mass": 0.5}
        return {
            "config": {"seed": seed, "eval_split": "test", "train_images": 100, "epochs": 2.0},
            "gate": 0.6,
            "wall_seconds": 1.0,
            "results": {"cls": {**final, "MaxBoxAccV2": cls_box}, "simpool": {**final, "MaxBoxAccV2": sim_box}},
            # both pass 0.6: CLS at update 8 (its box cls_box), SimPool at update 4 (sim_box), not their last points
            "curves": {
                "cls": [point(0, 0.1, 1.0), point(4, 0.5, 2.0), point(8, 0.65, cls_box), point(12, 0.8, 99.0)],
                "simpool": [point(0, 0.1, 1.0), point(4, 0.61, sim_box), point(8, 0.7, 98.0)],
            },
        }

    runs = []
    for seed, (cls_box, sim_box) in enumerate([(40.0, 50.0), (44.0, 50.0)]):
        run = tmp_path / f"s{seed}"
        run.mkdir()
        (run / "report.json").write_text(json.dumps(report(seed, cls_box, sim_box)))
        runs.append(str(run))
    assert table["main"](runs) == 0
    out = capsys.readouterr().out
    # MaxBoxAccV2 at the end and at matched accuracy: CLS 42 ± 2.8, SimPool 50 (std 0), paired gain 8 ± 2.8
    assert out.count("| MaxBoxAccV2 | 42.0 ± 2.8 | 50.0 ± 0.0 | 8.0 ± 2.8 |") == 2
    assert "| step | 8.0 ± 0.0 | 4.0 ± 0.0 | -4.0 ± 0.0 |" in out
    assert "matched mixed_rand (level 0.600 ± 0.000)" in out
    assert table["main"]([]) == 2
