"""``simpool demo`` end to end on a tiny budget: both arms, the report, the figures and the weights, in a locked
output folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from simpool.cli import main
from simpool.data.bench import SimPoolBench
from simpool.experiments.demo import CURVE_VARIANTS, GATE, DemoConfig, bench_vit, evaluate_model, train_model
from simpool.models import load_checkpoint
from simpool.train.run import RunFolder
from tests.experiments.conftest import needs_fmnist

TINY = ["train_images=256", "epochs=1", "batch_size=64", "eval_images=40", "figure_images=2", "depth=1"]
TINY += ["curve_points=4", "curve_images=24"]


def test_a_locked_output_folder_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "demo"
    with RunFolder(out).lock():  # a live run (this process) holds the folder
        assert main(["demo", "--quick", "--out", str(out), *TINY]) == 2
    assert f"run folder {out} is in use by pid {os.getpid()}" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == []  # nothing written, the lock released


@pytest.mark.slow
@needs_fmnist
def test_demo_end_to_end_writes_report_figures_and_weights(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", *TINY]) == 0
    printed = capsys.readouterr().out  # the command's summary
    report = json.loads((out / "report.json").read_text())
    assert sorted(os.listdir(out)) == sorted(
        ["cls.safetensors", "curves.png", "figure.png", "report.json", "report.md", "simpool.safetensors"]
    )  # and no lock left
    config = DemoConfig(**report["config"])
    assert (config.train_images, config.depth, report["gate"]) == (256, 1, GATE)
    assert report["versions"]["torch"] == torch.__version__
    # each arm's numbers are its retrained model's (the same seed trains the same weights) evaluated here
    device = torch.device("cpu")
    for kind in ("cls", "simpool"):
        trained = train_model(kind, config, device, progress=False)
        result = report["results"][kind]
        assert (result["steps"], result["loss"]) == (4, trained["loss"])
        scored = evaluate_model(kind, trained["model"], config, device, progress=False)
        assert {key: result[key] for key in scored} == scored
        # the curves: at initialisation and after each of the 4 updates; the last one the final model on 24 images
        points = report["curves"][kind]
        assert [p["step"] for p in points] == [0, 1, 2, 3, 4] and points == trained["curves"]
        assert points[-1]["epoch"] == 4 * 64 / 256
        last = evaluate_model(kind, trained["model"], config, device, False, CURVE_VARIANTS, 24)
        assert points[-1]["MaxBoxAccV2"] == last["MaxBoxAccV2"]
        # the saved weights are the trained model's
        saved = bench_vit(kind, config)
        load_checkpoint(saved, report["checkpoints"][kind])
        for name, value in saved.state_dict().items():
            assert torch.equal(value, trained["model"].state_dict()[name]), name
    masks = SimPoolBench(config.eval_split, "original", config.bench(), num_images=40).batch(np.arange(40))[3]
    assert report["uniform_mask_mass"] == float(np.asarray(masks).mean())
    assert report["checkpoints"] == {kind: str(out / f"{kind}.safetensors") for kind in ("cls", "simpool")}
    assert f"weights: {out / 'cls.safetensors'}, {out / 'simpool.safetensors'}" in printed
    assert report["curve_subset"]["images"] == 24 and report["curve_subset"]["variants"] == list(CURVE_VARIANTS)
    assert report["curve_summary"] and all(sentence in printed for sentence in report["curve_summary"])
    assert report["table"] in printed and report["table"] in (out / "report.md").read_text()
    assert "## Curves" in (out / "report.md").read_text()
    matched = report["matched"]  # both models at one mixed_rand level: the first point of each at or above it
    assert matched["level"] <= GATE and set(matched["points"]) == {"cls", "simpool"}
    for kind, point in matched["points"].items():
        assert point == next(p for p in report["curves"][kind] if p["top1_mixed_rand"] >= matched["level"])
    for figure in ("figure.png", "curves.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
