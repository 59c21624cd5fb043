"""The demo as a study that :func:`~simpool.train.launch.launch` runs: both arms trained, evaluated beside the
maps that ignore the image, compared at matched accuracy, saved and reported in one locked output folder."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ...models import save_checkpoint
from ...train.launch import launch
from ...train.run import RunFolder
from ..bench_report import save_curves, save_figure, write_report
from .arm import train_model
from .baselines import demo_baselines, fixed_baselines, train_masks
from .config import MODELS, DemoConfig
from .fairness import parameter_count
from .matched import matched_report
from .scoring import CURVE_SPLIT, CURVE_VARIANTS, GATE, eval_datasets, score_model

CHECKPOINTS = "curve_checkpoints"  # <out>/curve_checkpoints/<kind>_<update>.safetensors: a model at each curve point
TRAINING = "training"  # <out>/training/<kind>/: each arm's run folder (config.yaml, log.csv, last.pt to resume from)


class DemoStudy:
    """Train both arms (:class:`~.arm.BenchArm`), evaluate them (:func:`~.scoring.score_model`) and the maps they
    are compared with (:func:`~.baselines.demo_baselines`), score both at matched accuracy
    (:func:`~.matched.matched_report`), and write ``report.md``, ``report.json``, ``figure.png``, ``curves.png``,
    the weights and the curve checkpoints to ``run_dir``. Each arm trains in its own run folder,
    ``run_dir/training/<kind>``, so that a study stopped while it trains (Ctrl-C, a lost machine) resumes each arm
    where it was saved when it is run again in ``run_dir`` with the same settings.

    Args:
        config: the demo's settings.
        run_dir: the output folder (locked while the study runs).
        device: where the models train and are evaluated.
        progress: progress bars and the curve points as they are measured.
        resume: continue each arm from its saved state when there is one (False: train both afresh).
    """

    def __init__(
        self, config: DemoConfig, run_dir: str | Path, device: torch.device, progress: bool = True, resume: bool = True
    ):
        self.config, self.run_dir, self.device, self.progress = config, Path(run_dir), device, progress
        self.resume = resume

    def train_arm(self, kind: str, datasets: dict) -> dict:
        """One arm trained (:func:`~.arm.train_model`) and scored on the evaluation images: its summary, plus
        ``result``, ``outputs`` (the maps on ``original``), ``parameters`` and ``evaluation_seconds``."""
        folder = RunFolder(self.run_dir / TRAINING / kind)
        trained = train_model(
            kind, self.config, self.device, self.progress, self.run_dir / CHECKPOINTS, folder, self.resume
        )
        start = time.perf_counter()
        result, outputs = score_model(kind, trained["model"], self.config, self.device, datasets, self.progress)
        parameters = parameter_count(trained["model"])
        seconds = time.perf_counter() - start
        return {
            **trained,
            "result": result,
            "outputs": outputs,
            "parameters": parameters,
            "lr": self.config.arm_lr(kind),
            "evaluation_seconds": seconds,
        }

    def run(self, info=None, folder=None) -> dict:
        """The report (what :func:`~simpool.experiments.bench_report.write_report` writes)."""
        start, config = time.perf_counter(), self.config
        datasets = eval_datasets(config, config.eval_split)
        arms = {kind: self.train_arm(kind, datasets) for kind in MODELS}
        seconds = {"evaluation": sum(arm["evaluation_seconds"] for arm in arms.values())}
        clock = time.perf_counter()
        prior = train_masks(config)
        outputs = {kind: arm["outputs"] for kind, arm in arms.items()}
        initial = {kind: arm["initial_state"] for kind, arm in arms.items()}
        baselines = demo_baselines(config, self.device, datasets["original"], outputs, initial, prior)
        seconds["baselines"], clock = time.perf_counter() - clock, time.perf_counter()
        final = {
            kind: {"result": arm["result"], "steps": arm["steps"], "mean_map": baselines["mean_map"][kind]}
            for kind, arm in arms.items()
        }
        curves = {kind: arm["curves"] for kind, arm in arms.items()}
        matched = matched_report(curves, config, self.device, datasets, final)
        seconds["matched"] = time.perf_counter() - clock
        models = {kind: arm["model"] for kind, arm in arms.items()}
        subset = self.curve_subset(prior)
        report = {
            "config": dataclasses.asdict(config),
            "results": {kind: self.result(arm) for kind, arm in arms.items()},
            "uniform_mask_mass": next(iter(arms.values()))["result"]["uniform_mask_mass"],  # same images for all
            "baselines": baselines,
            "gate": GATE,
            "curves": curves,
            "curve_subset": subset,
            "matched": matched,
            "figure": str(save_figure(models, self.sources(), config, self.run_dir / "figure.png", self.device)),
            "checkpoints": self.save_weights(models),
            "curves_figure": str(save_curves(curves, subset["baselines"], GATE, self.run_dir / "curves.png")),
        }
        report.update(self.timing(arms, seconds, time.perf_counter() - start))
        return write_report(report, self.run_dir)

    @staticmethod
    def result(arm: dict) -> dict:
        """An arm's ``results`` entry: training summary, parameter count, learning rate, final scores."""
        keys = ("seconds", "steps", "loss", "curve_seconds", "parameters", "lr")
        return {**{key: arm[key] for key in keys}, **arm["result"]}

    @staticmethod
    def sources() -> dict[str, str]:
        return {kind: MODELS[kind][1] for kind in MODELS}

    @staticmethod
    def timing(arms: dict, seconds: dict, wall: float) -> dict:
        """What the run's parts took: ``seconds`` (training, curves, the final evaluation, the baselines, the
        matched checkpoints), ``curve_fraction`` (curves / training) and ``wall_seconds``."""
        training = sum(arm["seconds"] for arm in arms.values())
        curves = sum(arm["curve_seconds"] for arm in arms.values())
        return {
            "seconds": {"training": training, "curves": curves, **seconds},
            "curve_fraction": curves / max(training, 1e-9),  # curve evaluation time / training time
            "wall_seconds": wall,
        }

    def save_weights(self, models: dict) -> dict[str, str]:
        """The trained weights, for questions the report does not answer (``bench_vit`` + ``load_checkpoint``)."""
        seed = str(self.config.seed)
        return {
            kind: str(save_checkpoint(model, self.run_dir / f"{kind}.safetensors", {"kind": kind, "seed": seed}))
            for kind, model in models.items()
        }

    def curve_subset(self, prior: np.ndarray) -> dict:
        """The images the curves score (the first ``curve_images`` of the validation split): split, count,
        variants, a uniform map's mask mass and the maps that ignore the image (``baselines``) on them."""
        original = eval_datasets(self.config, CURVE_SPLIT, ("original",), self.config.curve_images)["original"]
        boxes, masks = original.boxes.numpy(), original.masks.numpy()  # (n, 4), (n, S, S)
        return {
            "split": CURVE_SPLIT,
            "images": len(original),
            "variants": list(CURVE_VARIANTS),
            "uniform_mask_mass": float(masks.astype(np.float64).mean()),  # a uniform map's mask mass on the subset
            "baselines": fixed_baselines(boxes, masks, self.config, prior),
        }


def run_demo(
    config: DemoConfig,
    out: str | Path,
    device: torch.device | None = None,
    progress: bool = True,
    resume: bool = True,
) -> dict:
    """Launch :class:`DemoStudy` in ``out`` (locked; SIGTERM and errors as every training's); returns the report
    plus ``run_dir``. An arm that ``out`` holds a saved state of resumes from it (unless ``resume`` is False).

    Raises:
        ValueError: one line: ``out`` is locked by a live run, a setting is bad, or ``out`` holds a run of other
            settings (:class:`~simpool.train.state.ResumeError`: start afresh with ``resume=False``).
    """
    return launch(DemoStudy(config, out, device or torch.device("cpu"), progress, resume))
