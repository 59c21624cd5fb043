"""``simpool bench ACTION``: the SimPool bench from the command line."""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("simpool.cli.bench_export", "write a bench variant in a standard layout (imagefolder|wsol|voc|in9)"),
}
