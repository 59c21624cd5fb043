"""The recipe arguments shared by ``simpool train`` and ``simpool train-dino``: a YAML recipe plus ``key=value``
overrides, ``--print-config`` and ``--no-resume``."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys


def add_recipe_arguments(parser: argparse.ArgumentParser, recipes: str = "configs/*.yaml") -> None:
    parser.add_argument("--config", help=f"YAML recipe ({recipes}); unset: the dataclass defaults")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides read as YAML, e.g. optim.lr=1e-3 train.epochs=10 model.pool=default",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has last.pt")


def run_recipe(args: argparse.Namespace, config_class: type, trainer: str, prog: str) -> dict | int:
    """Resolve the recipe; print it (``--print-config``) or train with ``trainer`` ("module:function").

    Returns:
        the trainer's result, or an exit code (2 for a bad recipe, 0 after printing).
    """
    from ..train.config import load_config, to_dict

    overrides = list(args.overrides) + (["train.resume=false"] if args.no_resume else [])
    try:
        config = load_config(config_class, args.config, overrides)
    except (ValueError, FileNotFoundError) as error:
        print(f"{prog}: {error}")
        return 2
    if args.print_config:
        import yaml

        print(yaml.safe_dump(to_dict(config), sort_keys=False), end="")
        return 0
    from ..train.run import RunLockedError
    from ..train.state import ResumeError

    module, function = trainer.split(":")
    # SIGTERM (a scheduler's preemption) exits through the finally blocks: the run folder's lock is released
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        result = getattr(importlib.import_module(module), function)(config)  # torch, timm: only for a valid config
    except (ResumeError, RunLockedError) as error:
        print(f"{prog}: {error}")
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to resume from the last checkpoint (last.pt)")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"run folder: {result['run_dir']}")
    return result
