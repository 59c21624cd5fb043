"""``simpool ...``: the command line, the only user of argparse in the package.

``main.py`` holds the registry of commands and the dispatch, ``common.py`` the argument groups every command
shares (one vocabulary: ``--data``, ``--out``, ``--model``, ``--pool``, ...), and each command is one module
that defines ``add_arguments(parser)``, ``run(args) -> int`` and ``EXAMPLE``, calling library functions.
"""

from .main import main

__all__ = ["main"]
