"""Process-group set-up for ``torchrun`` (PyTorch DDP: NCCL on GPU, gloo on CPU) and reductions.

``torchrun --nproc_per_node=N -m simpool.cli train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; without them the run is a single process and every helper here is a no-op.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 1800  # process-group timeout (train.dist_timeout_s): 30 min, not NCCL's 10


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> DistInfo:
    """Read torchrun's environment, pick the device and join the process group (NCCL on CUDA, else gloo).

    The CUDA device is ``local_rank % device_count``: ``cuda:local_rank`` with every GPU of the node
    visible, ``cuda:0`` where each process sees only its own GPU (``CUDA_VISIBLE_DEVICES`` per process).

    Args:
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        timeout_s: how long a collective (a barrier while rank 0 evaluates, say) may wait before the
            process group gives up (``train.dist_timeout_s``; NCCL's own default is 10 minutes).
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if timeout_s <= 0:
        raise ValueError(f"the process-group timeout must be positive, got {timeout_s} s")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("device=cuda was asked for but torch sees no CUDA device")
    if use_cuda:
        index = local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        chosen = torch.device("cuda", index)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", init_method="env://", timeout=timedelta(seconds=timeout_s)
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def broadcast_object(obj, info: DistInfo, src: int = 0):
    """Rank ``src``'s ``obj`` on every process (a picklable object; the input itself in a single process)."""
    if not info.distributed or not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj if info.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all processes (a copy; the input is left alone)."""
    tensor = tensor.clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group if this process joined one; call it once the DDP-wrapped models are gone.

    A process group outlives ``destroy_process_group`` while a ``DistributedDataParallel`` still holds it.
    It is then destroyed during interpreter shutdown, where a gloo worker thread that lets go of a
    collective's tensor cannot take the GIL: the process aborts ("terminate called without an active
    exception"), at random, more often on a busy machine. So unreachable DDP modules (reference cycles)
    are collected first, and scripts keep their DDP models inside a function that has returned.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # DDP modules in reference cycles would otherwise live until interpreter shutdown
        dist.destroy_process_group()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP and ``torch.compile`` wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


DIST_BN_MODES = ("", "reduce", "broadcast")


def synchronize_batchnorm(model: torch.nn.Module, info: DistInfo, mode: str) -> None:
    """timm's ``--dist-bn``: the same BatchNorm running statistics on every process.

    ``"reduce"`` averages them over the processes, ``"broadcast"`` copies rank 0's, ``""`` leaves each
    process its own (rank 0's are the ones saved). A no-op in a single process.
    """
    if mode not in DIST_BN_MODES:
        raise ValueError(f"train.dist_bn={mode!r}: use '', 'reduce' or 'broadcast'")
    if mode and info.distributed:
        from timm.utils import distribute_bn

        distribute_bn(model, info.world_size, reduce=mode == "reduce")


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """The rows of ``tensor (n_r, ...)`` of every process, concatenated in rank order (shards may differ in size).

    Every process must call it. Shards are padded to the largest for ``all_gather`` and cut back after.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    count = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    sizes = [int(c) for c in counts]
    padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    return torch.cat([rows[:size] for rows, size in zip(gathered, sizes, strict=True)])


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every process's picklable ``obj`` in rank order (``[obj]`` in a single process). Every process must call it."""
    if not (info.distributed and dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def run_together(work, info: DistInfo):
    """``work()`` on every process, then one ``all_gather_object`` of whether it failed: when it raised on any
    process, every process raises (the failed one its own error; the others the same class, ``ValueError`` or
    ``RuntimeError``, naming the rank), so no process waits at the next collective for one that left.

    Every process must call it; in a single process it is ``work()``.
    """
    if not (info.distributed and dist.is_available() and dist.is_initialized()):
        return work()
    try:
        result, error, failure = work(), None, None
    except Exception as raised:  # reported to every process below, then re-raised here
        result, error, failure = None, raised, (isinstance(raised, ValueError), f"{type(raised).__name__}: {raised}")
    failures = all_gather_objects(failure, info)
    if error is not None:
        raise error
    for rank, reported in enumerate(failures):
        if reported is not None:
            person, message = reported
            raise (ValueError if person else RuntimeError)(f"rank {rank} failed: {message}")
    return result
