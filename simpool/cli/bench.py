"""``simpool bench ACTION``: the SimPool bench from the command line."""

from __future__ import annotations

from ..cli.main import dispatch

NESTED = True
ACTIONS: dict[str, tuple[str, str]] = {
    "export": ("simpool.data.bench_export", "write a bench variant in a standard layout (imagefolder|wsol|voc|in9)"),
}


def main(argv: list[str], prog: str = "simpool bench") -> int:
    return dispatch(prog, "The SimPool bench: real objects on real backgrounds.", ACTIONS, argv)
