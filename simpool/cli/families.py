"""``simpool families``: the timm families whose models take a simpool pool, with the model names to pass."""

from __future__ import annotations

import argparse
import fnmatch

from ..models.families import FAMILIES, UNSUPPORTED, list_families, short_name

EXAMPLE = """example:
  simpool families                       # every supported family and its models
  simpool families 'resnet5*' 'vit_small*'
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "patterns", nargs="*", metavar="PATTERN", help="model names or shell patterns (as timm.list_models); unset: all"
    )


def run(args: argparse.Namespace) -> int:
    """One line per family: its name, its wiring and the model names (matching a pattern) that ``--model`` takes."""
    found, official = 0, {short_name(module) for family in FAMILIES.values() for module in family.modules}
    for family, models in list_families().items():
        if args.patterns:
            models = [name for name in models if any(fnmatch.fnmatch(name, p) for p in args.patterns)]
        if models:
            wiring = "the paper's wiring" if family in official else "generic wiring"
            print(f"{family} ({wiring}, {len(models)}): {' '.join(models)}")
            found += len(models)
    if args.patterns and not found:
        raise ValueError(f"no model of a supported family matches {args.patterns}; unsupported: {sorted(UNSUPPORTED)}")
    return 0
