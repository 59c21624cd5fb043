"""``simpool eval PROTOCOL``: one module per protocol (``EXAMPLE``, ``add_arguments``, ``run``), registered in
:mod:`simpool.cli.eval`; each parses, calls its protocol's library function, prints a table and writes JSON."""
