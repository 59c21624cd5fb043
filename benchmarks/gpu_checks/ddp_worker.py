"""The two processes of the ``ddp`` check (``torchrun -m gpu_checks.ddp_worker OUT SMOKE``): a ViT trained with
accumulation (``no_sync``), compiled after DDP, stopped and resumed; rank 0 saves the final weights to
``OUT/ddp_weights.pt``. With one GPU (or none) both processes share it over gloo; with two or more, NCCL."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from simpool import create_model
from simpool.train.distributed import DistInfo, cleanup, init_distributed
from simpool.train.engine import Engine
from simpool.train.recipe import Loop, Parts, Recipe
from simpool.train.run import RunFolder

ACCUM, UPDATES, STOP_AT = 2, 4, 2


def sizes(smoke: bool) -> tuple[int, int, dict]:
    """(global micro-batch, image size, model kwargs): a ViT without BatchNorm, so 2 processes equal 1."""
    if smoke:
        return 4, 32, dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    return 32, 64, dict(img_size=64, depth=2)  # 2 blocks: the check is about equality, compiled in seconds


def global_micro_batches(smoke: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``ACCUM x UPDATES`` global micro-batches, the same in every process (a seeded CPU generator)."""
    batch, size, _ = sizes(smoke)
    generator = torch.Generator().manual_seed(0)
    return [
        (torch.randn(batch, 3, size, size, generator=generator), torch.randint(0, 10, (batch,), generator=generator))
        for _ in range(ACCUM * UPDATES)
    ]


def build_model(smoke: bool, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    name = "vit_tiny_patch16_224"
    return create_model(name, pool="simpool", num_classes=10, **sizes(smoke)[2]).to(device)


class Shard(Recipe):
    """SGD with momentum on this process's rows of each global micro-batch; a resumed epoch skips its updates."""

    def __init__(self, smoke: bool, info: DistInfo):
        self.smoke, self.info = smoke, info

    def build(self, info: DistInfo) -> Parts:
        self.model = build_model(self.smoke, info.device)
        optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        return Parts(self.model, optimizer, epochs=1, updates_per_epoch=UPDATES)

    def batches(self, epoch: int, start_update: int):
        rank, world = self.info.rank, self.info.world_size
        for images, labels in global_micro_batches(self.smoke)[start_update * ACCUM :]:
            rows = slice(rank * len(labels) // world, (rank + 1) * len(labels) // world)
            yield images[rows], labels[rows], 0

    def step(self, model, inputs, targets, weight):
        inputs, targets = inputs.to(self.info.device), targets.to(self.info.device)
        return F.cross_entropy(model(inputs), targets), len(targets)


def train(out: Path, smoke: bool, info: DistInfo) -> None:
    """Stopped at update ``STOP_AT``, then resumed to the end, in the run folder ``out/run``."""
    for max_updates in (STOP_AT, 0):
        recipe = Shard(smoke, info)
        loop = Loop(accum_steps=ACCUM, compile=True, max_updates=max_updates, progress=False)
        Engine(recipe, loop, info, RunFolder(out / "run", is_main=info.is_main)).run()
    if info.is_main:
        torch.save({k: v.cpu() for k, v in recipe.model.state_dict().items()}, out / "ddp_weights.pt")


def main() -> None:
    out, smoke = Path(sys.argv[1]), sys.argv[2] == "1"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # full float32, as the reference
    if smoke:  # dynamo with the eager backend: the compiled path on a CPU, without inductor's C++ builds
        torch.compile = functools.partial(torch.compile, backend="eager")
    if torch.cuda.device_count() < 2:  # one GPU (or none): gloo, both processes on it
        dist.init_process_group("gloo")
    train(out, smoke, init_distributed("auto"))


if __name__ == "__main__":
    main()
    cleanup()
