"""Run under ``torchrun --nproc_per_node=2``: rank 0 fails to write the probe's files; each rank writes what it
raised to ``<argv[1]>/rank<N>.txt``."""

import sys
from pathlib import Path

import torch.distributed as dist

from simpool.train.distributed import init_distributed
from simpool.train.probe.run import ProbeRecipe

info = init_distributed("cpu", timeout_s=20)  # a rank left waiting gives up in 20 s
recipe = object.__new__(ProbeRecipe)


def write_results(report, num_tests):
    raise OSError("disk full")


recipe.write_results = write_results
try:
    recipe.finish(None, 1, info)
    outcome = f"rank {info.rank} returned"
except Exception as error:  # noqa: BLE001 - the test reads what each rank raised
    outcome = f"rank {info.rank} raised {type(error).__name__}: {error}"
# one file per rank (sys.argv[1] the folder): lines printed by two processes can interleave on one stdout
Path(sys.argv[1], f"rank{info.rank}.txt").write_text(outcome)
dist.destroy_process_group()
