"""The paper's supervised comparison (``simpool demo``), CLS token vs SimPool, on the SimPool bench.

The same small ViT is trained twice with the same data, budget and seed: once with its CLS token (the
paper's baseline) and once with SimPool (gamma 1.25, no CLS token; final norm -> SimPool -> LayerNorm
-> classifier, as the official code wires it). The arms are fair (:mod:`.fairness`): every parameter the two
models share starts equal, and weight decay skips biases, norms, tokens and position embeddings in both. Both
are then evaluated on the bench's ``eval_split`` (default ``test``):

- top-1 on ``original``, ``mixed_same`` and ``mixed_rand``; BG-gap = mixed_same - mixed_rand (IN-9);
- MaxBoxAccV2 (Choe et al., CVPR 2020) of each model's attention against the exact boxes: the mean CLS
  attention over the heads of the last block for the baseline, SimPool's ``a`` for SimPool;
- PxAP (wsolevaluation's pixel average precision) of the attention against the exact masks, threshold-free;
- CorLoc of DINO-seg boxes (the biggest component of the patches holding 60% of the attention mass);
- the attention mass inside the object's mask (a uniform map scores the mean mask area).

The attention is scored by :func:`simpool.evaluate.attention_quality.attention_quality`, as the probes', and
beside the maps that ignore the image (:mod:`.baselines`: ``uniform``, ``centre``, ``box_prior``, each model at
initialisation and each model's own mean map), on the same images. While they train, both models are scored at
``curve_points`` regular updates (and at initialisation) on the first ``curve_images`` images of the
VALIDATION split, whatever ``eval_split`` is: top-1 on ``original`` and ``mixed_rand``, MaxBoxAccV2, PxAP and
the mask mass, by the same :func:`evaluate_model` as the final evaluation; a checkpoint is saved at each point.
The matched-accuracy comparison (:mod:`.matched`) picks its level and checkpoints on those validation curves,
then scores the two checkpoints on ``eval_split``.

The package reads top to bottom: :mod:`.config` (``DemoConfig``, presets, the ViT), :mod:`.fairness` (the
shared initialisation, the weight-decay groups), :mod:`.scoring` (the evaluation), :mod:`.arm` (one model's
training, a :class:`~simpool.train.recipe.Recipe` with its curves), :mod:`.baselines`, :mod:`.matched`,
:mod:`.study` (both arms and the report, run by :func:`~simpool.train.launch.launch`), :mod:`.seeds` (runs of
several seeds paired: ``simpool demo --pair``) and :mod:`.lr_choice` (each arm's learning rate chosen on the
validation split: ``simpool demo --choose-lr``).

It writes ``report.md``, ``report.json`` (with the ``baselines``, the ``curves`` and ``matched``), ``figure.png``
(Figure 1 of the paper: input | CLS attention | SimPool attention, ground-truth box drawn), ``curves.png``, the
trained weights (``cls.safetensors``, ``simpool.safetensors``: ``load_checkpoint(bench_vit(kind, config), path)``)
and the curve checkpoints (``curve_checkpoints/<kind>_<update>.safetensors``) to the output folder; the command
prints a short table and what the numbers show.
Attention maps are compared only if both models learned the object: ``mixed_rand`` accuracy of at
least ``GATE`` (a model that reads the background alone scores chance there).
"""

from .arm import BenchArm, train_model
from .baselines import PRIOR_IMAGES, demo_baselines, fixed_baselines, mean_map_scores, train_masks
from .config import MODELS, PRESETS, DemoConfig, bench_vit, demo_config, preset
from .fairness import copy_shared, decay_groups, initial_vit, parameter_count
from .lr_choice import choose_lr
from .matched import matched_report
from .scoring import (
    ATTENTION_KEYS,
    CURVE_KEYS,
    CURVE_SPLIT,
    CURVE_VARIANTS,
    EVAL_VARIANTS,
    GATE,
    attention_scores,
    curve_point,
    curve_steps,
    eval_datasets,
    evaluate_model,
    predict,
    score_model,
)
from .seeds import pair_runs, paired_differences, paired_table
from .study import CHECKPOINTS, TRAINING, DemoStudy, run_demo

__all__ = [
    "ATTENTION_KEYS",
    "BenchArm",
    "CHECKPOINTS",
    "CURVE_KEYS",
    "CURVE_SPLIT",
    "CURVE_VARIANTS",
    "DemoConfig",
    "DemoStudy",
    "EVAL_VARIANTS",
    "GATE",
    "MODELS",
    "PRESETS",
    "PRIOR_IMAGES",
    "TRAINING",
    "attention_scores",
    "bench_vit",
    "choose_lr",
    "copy_shared",
    "curve_point",
    "curve_steps",
    "decay_groups",
    "demo_baselines",
    "demo_config",
    "eval_datasets",
    "evaluate_model",
    "fixed_baselines",
    "initial_vit",
    "matched_report",
    "mean_map_scores",
    "pair_runs",
    "paired_differences",
    "paired_table",
    "parameter_count",
    "predict",
    "preset",
    "run_demo",
    "score_model",
    "train_masks",
    "train_model",
]
