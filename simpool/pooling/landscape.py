"""Table 1 of the paper (``simpool landscape``), generated from the components each registered pool declares.

Adding a pool to the registry (with a ``components`` attribute, see ``framework.Components``) adds
its row; a pool that declares none gets a row of "?".
"""

from __future__ import annotations

from .framework import Components, components_of
from .registry import list_pools, pool_constructor

COLUMNS = (
    ("group", "#"),
    ("method", "METHOD"),
    ("cat", "CAT"),
    ("iterative", "ITER"),
    ("k", "k"),
    ("u0", "U0"),
    ("phi_q", "ϕQ(U)"),
    ("phi_k", "ϕK(X)"),
    ("similarity", "s(x,y)"),
    ("attention", "A"),
    ("phi_v", "ϕV(X)"),
    ("f", "f(x)"),
    ("phi_x", "ϕX(X)"),
    ("phi_u", "ϕU(Z)"),
)
FORMATS = ("markdown", "text")


def landscape_rows(pools: list[str] | None = None) -> list[tuple[str, Components | None]]:
    """``(registry name, components)`` for each pool, sorted by Table 1 group then name."""
    names = list_pools() if pools is None else pools
    unknown = sorted(set(names) - set(list_pools()))
    if unknown:
        raise ValueError(f"unknown pools {unknown}; valid pools: {', '.join(list_pools())}")
    rows = [(name, components_of(name, pool_constructor(name))) for name in names]
    return sorted(rows, key=lambda row: (str(row[1].group) if row[1] else "~", row[0]))


def _cells(name: str, components: Components | None) -> list[str]:
    if components is None:
        return ["?", name] + ["?"] * (len(COLUMNS) - 2)
    cells = []
    for field, _ in COLUMNS:
        value = getattr(components, field)
        if isinstance(value, bool):
            value = "✓" if value else ""
        cells.append(str(value))
    cells[1] = f"{components.method} (`{name}`)"
    return cells


def format_landscape(rows: list[tuple[str, Components | None]], fmt: str = "markdown") -> str:
    """Table 1 as a markdown table or aligned plain text."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    header = [title for _, title in COLUMNS]
    body = [_cells(name, components) for name, components in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *body]
    )
