"""``simpool ...``: the registry of commands and the dispatch.

A registry maps each command to the module that implements it; that module defines ``add_arguments(parser)``
and ``run(args) -> int`` (and may define ``EXAMPLE``). Only the module of the chosen command is imported.
``simpool eval <protocol>`` and ``simpool bench <action>`` are nested registries of the same shape (see
:func:`dispatch`).

A person's mistake (a bad value, a missing file: ``ValueError``, ``FileNotFoundError``) is one line naming it,
exit code 2, no traceback; ``--debug`` or ``SIMPOOL_DEBUG=1`` shows the traceback for a bug report. Ctrl-C
exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

# name: (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("simpool.cli.demo", "CLS vs SimPool ViT on the SimPool bench: accuracy, BG-gap, localization"),
    "resources": ("simpool.cli.resources", "parameters and GMACs, baseline and any pool (paper Table 8)"),
    "train": ("simpool.cli.train", "supervised training from a YAML recipe (timm machinery, torchrun DDP)"),
    "validate": ("simpool.cli.validate", "top-1 and top-5 of a trained checkpoint on an ImageFolder split"),
    "train-dino": ("simpool.cli.train_dino", "DINO self-supervised pre-training from a YAML recipe"),
    "probe": ("simpool.cli.probe", "attentive probing of a frozen backbone: a grid of heads x lrs in one pass"),
    "eval": ("simpool.cli.eval", "evaluation protocols: `simpool eval PROTOCOL --help`"),
    "attention": ("simpool.cli.attention", "attention maps, masks, boxes, grids and an HTML gallery"),
    "landscape": ("simpool.cli.landscape", "Table 1: the pooling landscape as instances of Algorithm 1"),
    "tournament": ("simpool.cli.tournament", "train every pool on the bench and rank them"),
    "bench": ("simpool.cli.bench", "the SimPool bench: `simpool bench export --help`"),
    "convert": ("simpool.cli.convert", "convert a checkpoint (ours or official) to a clean safetensors file"),
    "export": ("simpool.cli.export", "a model and its attention map as ONNX or a torch.export program"),
    "families": ("simpool.cli.families", "the timm families and model names that take a simpool pool"),
    "probe-predict": ("simpool.cli.probe_predict", "a saved probe head on its backbone: predictions and attention"),
    "board": ("simpool.cli.board", "several probe runs in one board: board.md, board.csv, accuracy vs attention"),
}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps multi-line examples as written."""


def dispatch(prog: str, description: str, registry: dict[str, tuple[str, str]], argv: list[str]) -> int:
    """Parse ``argv`` against ``registry``, importing only the chosen command's module, and run it.

    A module with a ``COMMANDS`` registry of its own (``simpool eval``, ``simpool bench``) dispatches the rest
    of the arguments to it.
    """
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=f"Run `{prog} COMMAND --help` for its options and an example."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (module_name, help_text) in registry.items():
        if name != chosen:
            subparsers.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        if hasattr(module, "COMMANDS"):  # a nested registry
            rest = argv[argv.index(name) + 1 :]
            return dispatch(f"{prog} {name}", module.__doc__.strip().splitlines()[0], module.COMMANDS, rest)
        add_command(subparsers, name, help_text, module)
    args = parser.parse_args(argv)
    from .common import check_shared_options  # torch: not for --help

    check_shared_options(args)
    return int(args.run(args) or 0)


def add_command(subparsers, name: str, help_text: str, module) -> argparse.ArgumentParser:
    """The parser of one command: its module's arguments, its example, defaults shown once."""
    sub = subparsers.add_parser(
        name, help=help_text, description=help_text, epilog=getattr(module, "EXAMPLE", None), formatter_class=_Formatter
    )
    sub._negative_number_matcher = NEGATIVE_NUMBER
    module.add_arguments(sub)
    sub.set_defaults(run=module.run)
    return sub


# Python 3.13's rule for a word after an option: '-1e-3' or '-.5' is a value (a command then refuses it in one line
# naming the option), not an unknown option that makes argparse print its usage. No option of ours looks like one.
NEGATIVE_NUMBER = re.compile(r"-\.?\d")


def walk(registry: dict[str, tuple[str, str]] | None = None, prog: str = "simpool"):
    """``(command line, parser)`` of every command and nested command (imports them all: for tests and docs)."""
    for name, (module_name, help_text) in (registry or COMMANDS).items():
        module = importlib.import_module(module_name)
        if hasattr(module, "COMMANDS"):
            yield from walk(module.COMMANDS, f"{prog} {name}")
            continue
        parser = argparse.ArgumentParser(prog=prog)
        yield f"{prog} {name}", add_command(parser.add_subparsers(), name, help_text, module)


DESCRIPTION = "Attention-based global pooling for vision models (SimPool, ICCV 2023)."
MISTAKES = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("SIMPOOL_DEBUG", "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    command = next((arg for arg in argv if not arg.startswith("-")), "")
    try:
        return dispatch("simpool", DESCRIPTION, COMMANDS, argv)
    except MISTAKES as error:
        if debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"simpool {command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"simpool {command}: interrupted", file=sys.stderr)
        return 130
