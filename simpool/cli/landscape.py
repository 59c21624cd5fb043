"""``simpool landscape``: Table 1 of the paper, generated from the components each registered pool declares."""

from __future__ import annotations

import argparse

from ..pooling.landscape import FORMATS, format_landscape, landscape_rows

EXAMPLE = """example:
  simpool landscape                      # Table 1 as markdown
  simpool landscape --format text --pools gap gem simpool
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="table format")
    parser.add_argument("--pools", nargs="+", default=None, help="registered pools to list; unset: all")


def run(args: argparse.Namespace) -> int:
    print(format_landscape(landscape_rows(args.pools), args.format))
    return 0
