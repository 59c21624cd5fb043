"""The demo as a study that :func:`~simpool.train.launch.launch` runs: both arms trained, evaluated, saved and
reported in one locked output folder."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ...data.bench import SimPoolBench
from ...models import save_checkpoint
from ...train.launch import launch
from ..bench_report import save_curves, save_figure, write_report
from .arm import train_model
from .config import MODELS, DemoConfig
from .scoring import CURVE_VARIANTS, GATE, evaluate_model


class DemoStudy:
    """Train both arms (:class:`~.arm.BenchArm`), evaluate them (:func:`~.scoring.evaluate_model`), write
    ``report.md``, ``report.json``, ``figure.png``, ``curves.png`` and the weights to ``run_dir``.

    Args:
        config: the demo's settings.
        run_dir: the output folder (locked while the study runs).
        device: where the models train and are evaluated.
        progress: progress bars and the curve points as they are measured.
    """

    def __init__(self, config: DemoConfig, run_dir: str | Path, device: torch.device, progress: bool = True):
        self.config, self.run_dir, self.device, self.progress = config, Path(run_dir), device, progress

    def run(self, info=None, folder=None) -> dict:
        """The report (what :func:`~simpool.experiments.bench_report.write_report` writes)."""
        start = time.perf_counter()
        results, models, curves = {}, {}, {}
        for kind in MODELS:
            trained = train_model(kind, self.config, self.device, self.progress)
            models[kind], curves[kind] = trained.pop("model"), trained.pop("curves")
            results[kind] = {**trained, **evaluate_model(kind, models[kind], self.config, self.device, self.progress)}
        checkpoints = self.save_weights(models)
        sources = {kind: MODELS[kind][1] for kind in models}
        figure = save_figure(models, sources, self.config, self.run_dir / "figure.png", self.device)
        curve_subset = self.curve_subset()
        training, curve_seconds = (sum(r[key] for r in results.values()) for key in ("seconds", "curve_seconds"))
        report = {
            "config": dataclasses.asdict(self.config),
            "results": results,
            "uniform_mask_mass": next(iter(results.values()))["uniform_mask_mass"],  # same images for every model
            "gate": GATE,
            "curves": curves,
            "curve_subset": curve_subset,
            "curve_fraction": curve_seconds / max(training, 1e-9),  # curve evaluation time / training time
            "wall_seconds": time.perf_counter() - start,
            "figure": str(figure),
            "checkpoints": checkpoints,
            "curves_figure": str(
                save_curves(curves, curve_subset["uniform_mask_mass"], GATE, self.run_dir / "curves.png")
            ),
        }
        return write_report(report, self.run_dir)

    def save_weights(self, models: dict) -> dict[str, str]:
        """The trained weights, for questions the report does not answer (``bench_vit`` + ``load_checkpoint``)."""
        return {
            kind: str(
                save_checkpoint(
                    model, self.run_dir / f"{kind}.safetensors", {"kind": kind, "seed": str(self.config.seed)}
                )
            )
            for kind, model in models.items()
        }

    def curve_subset(self) -> dict:
        """The images the curves score: split, count, variants and a uniform map's mask mass on them."""
        config = self.config
        subset = SimPoolBench(config.eval_split, "original", config.bench(), num_images=config.curve_images)
        masks = subset.batch(np.arange(len(subset)))[3]  # (n, S, S)
        return {
            "split": config.eval_split,
            "images": len(subset),
            "variants": list(CURVE_VARIANTS),
            "uniform_mask_mass": float(masks.double().mean()),  # a uniform map's mask mass on the subset
        }


def run_demo(config: DemoConfig, out: str | Path, device: torch.device | None = None, progress: bool = True) -> dict:
    """Launch :class:`DemoStudy` in ``out`` (locked; SIGTERM and errors as every training's); returns the report
    plus ``run_dir``.

    Raises:
        ValueError: one line: ``out`` is locked by a live run, or a setting is bad.
    """
    return launch(DemoStudy(config, out, device or torch.device("cpu"), progress))
