"""``simpool eval PROTOCOL``: one module per protocol (``EXAMPLE``, ``add_arguments``, ``run``), registered in
:mod:`simpool.cli.eval`; each parses, calls its protocol's library function, prints a table and writes JSON.

The steps every protocol with a model shares live here: its options (:func:`add_model_options`), the model
(:func:`model_of`) and the result (:func:`report`).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from ...utils import write_json
from ..common import add_model, add_out, add_runtime, check_writable, model_from_args


def add_model_options(
    parser: argparse.ArgumentParser,
    batch_size: int | None = 64,
    loader: bool = True,
    model_required: bool = True,
    out: str | None = None,
    out_help: str = "JSON result file; unset: print only",
) -> None:
    """The model group, the runtime group and ``--out`` (:mod:`simpool.cli.common`)."""
    add_model(parser, required=model_required)
    add_runtime(parser, batch_size=batch_size, loader=loader)
    add_out(parser, default=out, help=out_help)


def model_of(args: argparse.Namespace, out_kind: str = "file") -> nn.Module:
    """Refuse a read-only ``--out`` (or one that exists as a folder, ``out_kind="file"``, or as a file,
    ``out_kind="folder"``) before any work, seed with ``--seed``, then build the model strictly."""
    check_writable(args.out, kind=out_kind)
    torch.manual_seed(args.seed)
    return model_from_args(args)


def report(args: argparse.Namespace, protocol: str, table: str, result: dict) -> int:
    """Print ``table``; write ``result`` with the protocol, the model and the pool to ``--out`` when given."""
    print(table)
    if args.out:
        write_json(args.out, {"protocol": protocol, "model": args.model, "pool": args.pool, **result})
    return 0
