"""A self-contained HTML gallery: images with their maps, masks, boxes and scores, sortable by score."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np

from ..utils import atomic_write_bytes
from .overlay import to_rgb

STYLE = """
body { font-family: sans-serif; margin: 1em; background: #fafafa; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 4px; text-align: center; vertical-align: middle; }
th.score { cursor: pointer; background: #e8eef8; user-select: none; }
th.score:hover { background: #d0dcf0; }
figure { margin: 0; }
figcaption { font-size: 11px; color: #333; }
img { display: block; image-rendering: auto; }
"""

# Clicking a score header sorts the rows by it; a second click reverses the order. Missing scores go last.
SCRIPT = """
function sortBy(column) {
  const body = document.querySelector('#gallery tbody');
  const header = document.querySelector('th[data-column="' + column + '"]');
  const descending = header.dataset.order !== 'desc';
  document.querySelectorAll('th.score').forEach(h => { h.dataset.order = ''; });
  header.dataset.order = descending ? 'desc' : 'asc';
  const rows = Array.from(body.rows);
  const value = r => { const v = parseFloat(r.dataset[column]); return isNaN(v) ? null : v; };
  rows.sort((a, b) => {
    const x = value(a), y = value(b);
    if (x === null) return 1;
    if (y === null) return -1;
    return descending ? y - x : x - y;
  });
  rows.forEach(r => body.appendChild(r));
}
"""


def png_data_uri(picture) -> str:
    """A picture as an embedded ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((to_rgb(picture) * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def gallery_html(entries: list[dict], title: str = "simpool attention", thumbnail: int = 160) -> str:
    """The gallery page as a string; every image is embedded, nothing is fetched.

    Args:
        entries: one per image: ``{"name": str, "scores": {column: float or None}, "pictures":
            [(caption, picture), ...]}``; pictures as :func:`figure_grid` takes them.
        title: page title.
        thumbnail: displayed width of each picture in CSS pixels.
    """
    columns = list(dict.fromkeys(column for entry in entries for column in entry.get("scores", {})))
    keys = {column: f"s{i}" for i, column in enumerate(columns)}  # data-* attribute names
    head = "".join(
        f'<th class="score" data-column="{keys[c]}" onclick="sortBy(\'{keys[c]}\')">{html.escape(c)} ⇅</th>'
        for c in columns
    )
    rows = []
    for entry in entries:
        scores = entry.get("scores", {})
        data = " ".join(f'data-{keys[c]}="{_number(scores.get(c))}"' for c in columns)
        cells = "".join(f"<td>{_format(scores.get(c))}</td>" for c in columns)
        figures = "".join(
            f'<td><figure><img src="{png_data_uri(picture)}" width="{thumbnail}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure></td>"
            for caption, picture in entry.get("pictures", [])
        )
        rows.append(f"<tr {data}><td>{html.escape(entry['name'])}</td>{cells}{figures}</tr>")
    width = max((len(entry.get("pictures", [])) for entry in entries), default=0)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>{len(entries)} images. Click a score to sort by it.</p>\n"
        f'<table id="gallery"><thead><tr><th>image</th>{head}<th colspan="{width}">pictures</th></tr></thead>\n'
        f"<tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n</body></html>\n"
    )


def write_gallery(
    entries: list[dict], path: str | Path, title: str = "simpool attention", thumbnail: int = 160
) -> Path:
    """Write :func:`gallery_html` to ``path`` atomically."""
    return atomic_write_bytes(path, gallery_html(entries, title, thumbnail).encode("utf-8"))


def _number(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def _format(value) -> str:
    return "–" if _number(value) == "" else f"{float(value):.3f}"
