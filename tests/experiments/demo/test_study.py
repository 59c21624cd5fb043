"""``simpool demo`` end to end on a tiny budget: both arms, the report, the figures and the weights, in a locked
output folder."""

from __future__ import annotations

import json
import os

import pytest
import torch

from simpool.cli import main
from simpool.experiments.demo import (
    CHECKPOINTS,
    CURVE_VARIANTS,
    GATE,
    TRAINING,
    DemoConfig,
    bench_vit,
    eval_datasets,
    evaluate_model,
    mean_map_scores,
    parameter_count,
    score_model,
    train_model,
)
from simpool.models import load_checkpoint
from simpool.train.run import RunFolder
from tests.experiments.conftest import needs_fmnist
from tests.train.conftest import run_cli_killed_at

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
        [CHECKPOINTS, TRAINING, "cls.safetensors", "curves.png", "figure.png", "report.json", "report.md"]
        + ["simpool.safetensors"]
    )  # and no lock left
    for kind in ("cls", "simpool"):  # each arm's run folder: what a stopped run resumes from
        assert {"config.yaml", "log.csv", "last.pt"} <= set(os.listdir(out / TRAINING / kind))
    config = DemoConfig(**report["config"])
    assert (config.train_images, config.depth, config.eval_split, report["gate"]) == (256, 1, "test", GATE)
    assert report["versions"]["torch"] == torch.__version__
    # each arm's numbers are its retrained model's (the same seed trains the same weights) evaluated here
    device = torch.device("cpu")
    datasets = eval_datasets(config, "test")
    for kind in ("cls", "simpool"):
        trained = train_model(kind, config, device, progress=False)
        result = report["results"][kind]
        assert (result["steps"], result["loss"]) == (4, trained["loss"])
        assert result["parameters"] == parameter_count(trained["model"])
        assert result["lr"] == config.arm_lr(kind) == config.lr  # each arm's rate, stated
        scored, outputs = score_model(kind, trained["model"], config, device, datasets, progress=False)
        assert {key: result[key] for key in scored} == scored
        assert report["baselines"]["mean_map"][kind] == mean_map_scores(outputs, config.patch_size)
        # the curves: on the VALIDATION split's first 24 images, at initialisation and after each of the 4 updates,
        # each with its checkpoint
        points = report["curves"][kind]
        assert [p["step"] for p in points] == [0, 1, 2, 3, 4] and all("PxAP" in p for p in points)
        assert [{k: v for k, v in p.items() if k != "checkpoint"} for p in points] == trained["curves"]
        assert [p["checkpoint"] for p in points] == [
            str(out / CHECKPOINTS / f"{kind}_{s}.safetensors") for s in range(5)
        ]
        assert points[-1]["epoch"] == 4 * 64 / 256
        last = evaluate_model(kind, trained["model"], config, device, False, CURVE_VARIANTS, 24, split="val")
        assert (points[-1]["MaxBoxAccV2"], points[-1]["PxAP"]) == (last["MaxBoxAccV2"], last["PxAP"])
        # the saved weights are the trained model's
        saved = bench_vit(kind, config)
        load_checkpoint(saved, report["checkpoints"][kind])
        for name, value in saved.state_dict().items():
            assert torch.equal(value, trained["model"].state_dict()[name]), name
    assert report["curve_subset"]["split"] == "val" and report["curve_subset"]["images"] == 24
    assert report["curve_subset"]["variants"] == list(CURVE_VARIANTS)
    assert set(report["curve_subset"]["baselines"]) == {"uniform", "centre", "box_prior"}
    # the baselines, on the test images: every map with the four metrics (and BoxAcc@50)
    baselines = report["baselines"]
    assert set(baselines) == {"uniform", "centre", "box_prior", "init", "mean_map"}
    for scores in [baselines[name] for name in ("uniform", "centre", "box_prior")] + [
        baselines[group][kind] for group in ("init", "mean_map") for kind in ("cls", "simpool")
    ]:
        assert {"MaxBoxAccV2", "PxAP", "CorLoc", "mask_mass"} <= set(scores)
    masks = datasets["original"].masks.numpy()
    assert report["uniform_mask_mass"] == float(masks.mean())
    assert report["checkpoints"] == {kind: str(out / f"{kind}.safetensors") for kind in ("cls", "simpool")}
    assert f"weights: {out / 'cls.safetensors'}, {out / 'simpool.safetensors'}" in printed
    for sentence in report["baseline_summary"] + report["curve_summary"]:
        assert sentence in printed
    assert "the strongest map that ignores the image" in report["baseline_summary"][0]
    markdown = (out / "report.md").read_text()
    assert report["table"] in printed and report["table"] in markdown and report["baseline_table"] in markdown
    for section in ("## Curves", "## Against maps that ignore the image", "## At matched accuracy (chosen on val"):
        assert section in markdown
    # matched: the level and points chosen on the val curves, the checkpoints then scored on test
    matched = report["matched"]
    assert matched["level"] <= GATE and (matched["chosen_on"], matched["evaluated_on"]) == ("val", "test")
    for kind, point in matched["points"].items():
        assert point == next(p for p in report["curves"][kind] if p["top1_mixed_rand"] >= matched["level"])
        model = bench_vit(kind, config)
        load_checkpoint(model, point["checkpoint"])
        scored = score_model(kind, model, config, device, datasets, progress=False)[0]
        assert matched["results"][kind] == {"step": point["step"], **scored}
    assert set(report["seconds"]) == {"training", "curves", "evaluation", "baselines", "matched"}
    for figure in ("figure.png", "curves.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@needs_fmnist
def test_a_demo_killed_while_it_trains_resumes_when_run_again(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--out", str(out), "--no-progress", *TINY]
    killed = run_cli_killed_at(2, args)  # SIGKILL after the CLS arm's update 2 (of 4), before its state is saved
    assert killed.returncode == -9 and not (out / "report.json").exists()
    assert main(args) == 0  # the same command again: the dead run's lock is stale, the CLS arm resumes
    printed = capsys.readouterr().out
    assert f"resumed {out / TRAINING / 'cls'} at epoch 0, update 1" in printed
    assert f"resumed {out / TRAINING / 'simpool'}" not in printed  # it had not started
    report = json.loads((out / "report.json").read_text())
    config = DemoConfig(**report["config"])
    trained = train_model("cls", config, torch.device("cpu"), progress=False)  # never stopped
    assert report["results"]["cls"]["loss"] == trained["loss"]
    assert [{k: v for k, v in p.items() if k != "checkpoint"} for p in report["curves"]["cls"]] == trained["curves"]
    # a run of other settings in the folder is refused in one line; --no-resume trains afresh there
    assert main([*args, "lr=3e-3"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"simpool demo: error: cannot resume {out / TRAINING / 'cls'}: the config differs from the saved config.yaml "
        "(lr: 0.001 -> 0.003) and no setting may change on resume: undo the change, or start over with --no-resume"
    )
    assert main([*args, "lr=3e-3", "--no-resume"]) == 0
    assert "resumed" not in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["config"]["lr"] == 3e-3
