"""One arm of the demo: the bench ViT with its CLS token or with SimPool, trained as a recipe, its curves
measured as it trains."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ...data.bench import SimPoolBench, normalize_images
from ...models import save_checkpoint
from ...train.engine import Engine
from ...train.recipe import Loop, Parts, Recipe
from ...train.run import RunFolder
from ...train.schedule import Schedule
from ...utils import warmup_cosine
from .config import DemoConfig
from .fairness import decay_groups, initial_vit
from .scoring import CURVE_SPLIT, CURVE_VARIANTS, curve_point, curve_steps

CHECKPOINTS_PER_ARM = 10  # training states saved per arm when it runs in a run folder (the last one replaces)


class BenchArm(Recipe):
    """Train one model (``kind``: ``cls`` or ``simpool``) on the bench's ``original`` train split.

    The model starts from :func:`~.fairness.initial_vit` (the parameters both kinds share are the same for a
    seed; a copy of the initial state is kept in ``initial_state``). One engine epoch of ``steps`` updates over a
    seeded order of the images (``config.epochs`` passes), AdamW (no weight decay on biases, norms, tokens and
    position embeddings: :func:`~.fairness.decay_groups`) at the arm's learning rate (``config.arm_lr(kind)``),
    with a linear warm-up and a cosine decay,
    label-smoothed cross-entropy, random horizontal flips. The curve points (:func:`~.scoring.curve_steps`, on
    the validation split) are measured once the model is built (update 0) and after the updates they name
    (:meth:`after_update`), and the model is saved there to ``checkpoint_dir/<kind>_<update>.safetensors`` when
    ``checkpoint_dir`` is given; they use no random number, so the trained model is the same with or without
    them. Images drawn more than once (more than one epoch; the curve subset) are rendered once and kept in
    memory: the same uint8 images, so the same model, without rendering each again.

    Run with a run folder (``train_model(..., folder=...)``), the engine saves the training state there about
    ``CHECKPOINTS_PER_ARM`` times (``last.pt``: the model, AdamW, the schedule, and this arm's own state,
    :meth:`state_dict`: the flips' generator, the curves so far, the losses and the clock), and a run started
    again in the folder resumes from it, training the same model as one that was never stopped.
    """

    def __init__(
        self,
        kind: str,
        config: DemoConfig,
        device: torch.device,
        progress: bool = True,
        checkpoint_dir: str | Path | None = None,
        resume: bool = True,
    ):
        self.kind, self.config, self.device, self.progress = kind, config, device, progress
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.name = f"train {kind}"
        self.steps = arm_steps(config)
        every = math.ceil(self.steps / CHECKPOINTS_PER_ARM)  # with a run folder only
        self.loop = Loop(progress=progress, log_every=10, checkpoint_every=every, resume=resume, seed=config.seed)
        self.losses: list[torch.Tensor] = []  # on the device: read once at the end
        self.curves: list[dict] = []
        self.curve_seconds = 0.0
        self.earlier_seconds = 0.0  # the wall time of the processes before a resume

    def build(self, info) -> Parts:
        config = self.config
        self.model = initial_vit(self.kind, config).to(self.device)
        self.initial_state = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
        data = SimPoolBench("train", "original", config.bench(), num_images=config.train_images)
        self.data = data.rendered(self.progress) if config.epochs > 1 else data  # 614 MB for 50,000 images of 64 px
        self.curve_data = {
            variant: SimPoolBench(CURVE_SPLIT, variant, config.bench(), num_images=config.curve_images).rendered()
            for variant in (CURVE_VARIANTS if config.curve_points > 0 else ())
        }
        optimizer = torch.optim.AdamW(decay_groups(self.model, config.weight_decay), lr=config.arm_lr(self.kind))
        schedule = warmup_cosine(optimizer, self.steps, max(1, int(config.warmup * self.steps)))
        self.generator = torch.Generator().manual_seed(config.seed)
        passes = math.ceil(config.epochs) + 1
        self.order = torch.cat([torch.randperm(len(self.data), generator=self.generator) for _ in range(passes)])
        self.measure_at = set(curve_steps(self.steps, config.curve_points))
        self.started = time.perf_counter()
        state = {"model": self.model, "optimizer": optimizer, "scheduler": schedule, "arm": self}  # last.pt holds
        return Parts(
            self.model, optimizer, epochs=1, updates_per_epoch=self.steps, schedule=Schedule(schedule), state=state
        )

    def batches(self, epoch: int, start_update: int):
        if start_update == 0:
            self.after_update(0)  # the initialisation's point (a resumed run has it)
        size = self.config.batch_size
        for step in range(start_update, self.steps):
            images, labels, _, _ = self.data.batch(self.order[step * size : (step + 1) * size].numpy())
            flip = torch.rand(len(images), 1, 1, 1, generator=self.generator) < 0.5
            images = torch.where(flip, images.flip(-1), images)  # horizontal flip
            yield normalize_images(images), labels, 0

    def step(self, model, images, labels, weight):
        loss = F.cross_entropy(model(images.to(self.device)), labels.to(self.device), label_smoothing=0.1)
        self.losses.append(loss.detach())
        return loss, len(labels)

    def after_update(self, update: int) -> None:
        """The curve point of ``update`` when it is one of ``measure_at`` (and its checkpoint)."""
        if update not in self.measure_at:
            return
        start = time.perf_counter()
        point = curve_point(self.kind, self.model, self.config, self.device, update, self.curve_data)
        if self.checkpoint_dir is not None:
            metadata = {"kind": self.kind, "seed": str(self.config.seed), "step": str(update)}
            path = self.checkpoint_dir / f"{self.kind}_{update}.safetensors"
            point["checkpoint"] = str(save_checkpoint(self.model, path, metadata))
        self.curves.append(point)
        self.model.train()
        if self.progress:  # a long run shows its curves as they grow
            tqdm.write(
                f"{self.kind} update {update} (epoch {point['epoch']:.2f}): "
                f"top-1 original {point['top1_original']:.3f}, mixed_rand {point['top1_mixed_rand']:.3f}; "
                f"MaxBoxAccV2 {point['MaxBoxAccV2']:.1f}, PxAP {point['PxAP']:.1f}, mask mass {point['mask_mass']:.3f}"
            )
        self.curve_seconds += time.perf_counter() - start

    def state_dict(self) -> dict:
        """What a resume needs besides the model, AdamW and the schedule (saved in ``last.pt`` after an update):
        the flips' generator, the curve points so far, every update's loss, and the seconds spent so far."""
        return {
            "generator": self.generator.get_state(),
            "curves": json.loads(json.dumps(self.curves)),  # plain numbers and strings: weights_only reads them
            "losses": torch.stack(self.losses).cpu() if self.losses else torch.zeros(0),
            "curve_seconds": self.curve_seconds,
            "wall_seconds": self.earlier_seconds + time.perf_counter() - self.started,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (after :meth:`build`, which drew the same order of the images)."""
        self.generator.set_state(state["generator"])
        self.curves = list(state["curves"])
        self.losses = list(state["losses"].to(self.device).unbind())
        self.curve_seconds, self.earlier_seconds = state["curve_seconds"], state["wall_seconds"]
        self.started = time.perf_counter()

    def summary(self, row: dict) -> dict:
        """``{"model", "initial_state", "seconds", "steps", "loss", "curves", "curve_seconds"}`` (``seconds``:
        training alone, ``curve_seconds``: the curve evaluations and checkpoints; ``loss``: the mean of the last 20
        updates')."""
        return {
            "model": self.model,
            "initial_state": self.initial_state,
            "seconds": self.earlier_seconds + time.perf_counter() - self.started - self.curve_seconds,
            "steps": self.steps,
            "loss": float(torch.stack(self.losses[-20:]).double().mean()),
            "curves": self.curves,
            "curve_seconds": self.curve_seconds,
        }


def train_model(
    kind: str,
    config: DemoConfig,
    device: torch.device,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    folder: RunFolder | None = None,
    resume: bool = True,
) -> dict:
    """Train one arm (:class:`BenchArm`) by :class:`~simpool.train.engine.Engine`; returns its summary.

    With ``folder``, the training state is saved there as it trains and, when ``resume`` and the folder holds
    one, the arm continues from it (a config that differs from the folder's ``config.yaml`` is refused in one
    line, :class:`~simpool.train.state.ResumeError`)."""
    arm = BenchArm(kind, config, device, progress, checkpoint_dir, resume)
    return Engine(arm, arm.loop, folder=folder).run()


def arm_steps(config: DemoConfig) -> int:
    """The arm's optimizer updates: ``config.epochs`` passes over ``config.train_images`` in ``batch_size``."""
    return max(1, int(config.epochs * config.train_images / config.batch_size))
