"""The one way a command that trains reads its config and starts: a YAML recipe (``--config``) plus positional
``key=value`` overrides checked against the config's dataclasses, ``--print-config``, ``--no-resume``; then
:func:`simpool.train.launch.launch`.

``simpool train``, ``train-dino``, ``eval finetune``, ``probe`` and ``demo`` all take their overrides this way.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

OVERRIDES_HELP = "dotted overrides read as YAML, checked against the config's fields, e.g. {example}"


def add_overrides(parser: argparse.ArgumentParser, example: str = "optim.lr=1e-3 train.epochs=10") -> None:
    """The positional ``key=value`` overrides."""
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP.format(example=example))


def add_recipe_arguments(
    parser: argparse.ArgumentParser, recipes: str = "configs/*.yaml", example: str = "optim.lr=1e-3 train.epochs=10"
) -> None:
    """``--config``, the ``key=value`` overrides, ``--print-config`` and ``--no-resume``."""
    parser.add_argument("--config", help=f"YAML recipe ({recipes}); unset: the dataclass defaults")
    add_overrides(parser, example)
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has last.pt")


def resolve_config(args: argparse.Namespace, config_class: type, base: dict | None = None) -> Any:
    """``config_class`` from its defaults, then ``base`` (what a command's own flags set), then the recipe file
    (``--config``), then the overrides (and ``train.resume=false`` for ``--no-resume``).

    Raises:
        ValueError: an unknown key or a value of the wrong type, named.
    """
    from ..train.config import from_dict, merge, parse_overrides, read_recipe

    overrides = list(getattr(args, "overrides", []) or [])
    if getattr(args, "no_resume", False):
        overrides.append("train.resume=false")
    data = merge(base or {}, read_recipe(args.config) if getattr(args, "config", None) else {})
    return from_dict(config_class, merge(data, parse_overrides(overrides)))


def print_config(config: Any) -> None:
    import yaml

    from ..train.config import to_dict

    print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")


def run_recipe(args: argparse.Namespace, config: Any, make_recipe: Callable[[Any], Any]) -> dict | None:
    """Print the config (``--print-config``: returns None) or launch ``make_recipe(config)``; returns its result.

    Errors are one-line ``ValueError``s (a locked folder, a run that cannot resume, a bad value): ``simpool``'s
    entry point prints them on stderr and exits with code 2.
    """
    if getattr(args, "print_config", False):
        print_config(config)
        return None
    from ..train.launch import launch

    result = launch(make_recipe(config), config)
    print(f"run folder: {result['run_dir']}")
    return result
