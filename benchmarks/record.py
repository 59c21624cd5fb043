"""What a kept benchmark output says about its run: the command, the machine, the date and the load around it.

Every benchmark's ``--out FILE.json`` writes ``{command, machine, date, load, ...results}`` through
:func:`write_record`; ``docs/results/tables.py`` turns such files into the tables of ``docs/RESULTS.md``. Timings
from a shared machine are only ratios measured side by side in one run, so the load average at the start and at
the end (1, 5 and 15 minutes) says how busy the machine was.

As a script it records a ``simpool`` command that writes its rows with ``--out`` (``simpool resources``):

    python benchmarks/record.py --out docs/results/resources.json -- resources --model resnet18 --pool default simpool
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from simpool.utils import write_json


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 0.01."""
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> str:
    """The processor, its core count, the hostname and torch's version and threads."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    threads = torch.get_num_threads()
    plural = "s" if threads != 1 else ""
    return f"{platform.node()}: {os.cpu_count()} x {cpu}, torch {torch.__version__} on {threads} thread{plural}"


def record_head() -> dict:
    """The record's head, taken before the work: the command, the date and the load at the start."""
    command = "python " + shlex.join([_relative(sys.argv[0]), *sys.argv[1:]])
    return {"command": command, "date": time.strftime("%Y-%m-%d"), "load": load_average()}


def write_record(path: str | os.PathLike, head: dict, results: dict) -> Path:
    """``{command, machine, date, load, load_end, **results}`` as JSON at ``path``; the machine is described after
    the work, so that it names the threads the benchmark set."""
    record = {"command": head["command"], "machine": machine(), **head, "load_end": load_average(), **results}
    return write_json(path, record)


def git_commit(folder: str | os.PathLike) -> str | None:
    """The commit checked out in ``folder`` (a reference's checkout), or None when it is not a git checkout."""
    result = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def _relative(script: str) -> str:
    """A script's path relative to the working directory when it lies under it (the command as typed)."""
    path = Path(script).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the record, JSON")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then a simpool command that takes --out")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the simpool command after --")
    from simpool.cli.main import main as simpool_main

    head = record_head()
    with tempfile.TemporaryDirectory() as folder:
        rows = Path(folder) / "rows.json"
        code = simpool_main([*command, "--out", str(rows)])
        if code:
            return code
        write_record(args.out, head, {"rows": json.loads(rows.read_text())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
