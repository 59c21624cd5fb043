"""The paper's supervised comparison (``simpool demo``), CLS token vs SimPool, on the SimPool bench.

The same small ViT is trained twice with the same data, budget and seed: once with its CLS token (the
paper's baseline) and once with SimPool (gamma 1.25, no CLS token; final norm -> SimPool -> LayerNorm
-> classifier, as the official code wires it). Both are then evaluated on the bench's test split:

- top-1 on ``original``, ``mixed_same`` and ``mixed_rand``; BG-gap = mixed_same - mixed_rand (IN-9);
- MaxBoxAccV2 (Choe et al., CVPR 2020) of each model's attention against the exact boxes: the mean CLS
  attention over the heads of the last block for the baseline, SimPool's ``a`` for SimPool;
- CorLoc of DINO-seg boxes (the biggest component of the patches holding 60% of the attention mass);
- the attention mass inside the object's mask (a uniform map scores the mean mask area).

The attention is scored by :func:`simpool.evaluate.attention_quality.attention_quality`, as the probes'.
While they train, both models are scored at ``curve_points`` regular updates (and at initialisation) on a
fixed subset of the same split (its first ``curve_images`` images): top-1 on ``original`` and ``mixed_rand``,
MaxBoxAccV2 and the mask mass, by the same :func:`evaluate_model` as the final evaluation.

The package reads top to bottom: :mod:`.config` (``DemoConfig``, presets, the ViT), :mod:`.scoring` (the
evaluation), :mod:`.arm` (one model's training, a :class:`~simpool.train.recipe.Recipe` with its curves),
:mod:`.study` (both arms and the report, run by :func:`~simpool.train.launch.launch`).

It writes ``report.md``, ``report.json`` (with the ``curves``), ``figure.png`` (Figure 1 of the paper: input |
CLS attention | SimPool attention, ground-truth box drawn), ``curves.png`` and the trained weights
(``cls.safetensors``, ``simpool.safetensors``: ``load_checkpoint(bench_vit(kind, config), path)``) to the output
folder; the command prints a short table and what the curves show.
Attention maps are compared only if both models learned the object: ``mixed_rand`` accuracy of at
least ``GATE`` (a model that reads the background alone scores chance there).
"""

from .arm import BenchArm, train_model
from .config import MODELS, PRESETS, DemoConfig, bench_vit, demo_config, preset
from .scoring import (
    CURVE_KEYS,
    CURVE_VARIANTS,
    EVAL_VARIANTS,
    GATE,
    attention_scores,
    curve_point,
    curve_steps,
    evaluate_model,
    predict,
)
from .study import DemoStudy, run_demo

__all__ = [
    "BenchArm",
    "CURVE_KEYS",
    "CURVE_VARIANTS",
    "DemoConfig",
    "DemoStudy",
    "EVAL_VARIANTS",
    "GATE",
    "MODELS",
    "PRESETS",
    "attention_scores",
    "bench_vit",
    "curve_point",
    "curve_steps",
    "demo_config",
    "evaluate_model",
    "predict",
    "preset",
    "run_demo",
    "train_model",
]
