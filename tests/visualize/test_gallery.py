"""The HTML gallery: self-contained, sortable by score, and every picture shown by a real browser (headless
Chromium, installed by ``make setup``)."""

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simpool.visualize import gallery_html, write_gallery

CHROMIUM = Path("/usr/bin/chromium")


def entries(color=(255, 0, 0)):
    picture = np.broadcast_to(np.array(color, dtype=np.uint8), (32, 32, 3))
    return [
        {"name": "<cat>.png", "scores": {"A iou": 0.25, "A confidence": 0.9}, "pictures": [("input", picture)]},
        {"name": "dog.png", "scores": {"A iou": None, "A confidence": 0.5}, "pictures": [("input", picture)] * 2},
    ]


def test_self_contained_with_sortable_scores():
    page = gallery_html(entries())
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) == 3  # one per picture, all embedded
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
        assert picture.shape == (32, 32, 3) and (picture == [255, 0, 0]).all()
    assert "http" not in page  # nothing fetched
    # one sortable header per score, the values as data attributes, a missing score left empty
    assert page.count('class="score"') == 2 and "sortBy('s0')" in page and "sortBy('s1')" in page
    assert 'data-s0="0.25" data-s1="0.9"' in page and 'data-s0="" data-s1="0.5"' in page
    assert "&lt;cat&gt;.png" in page and "<cat>" not in page  # names are escaped


def _browser() -> Path:
    """Debian's Chromium (``make setup`` installs it); without it the test is skipped, or fails where CI is set."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"no headless Chromium at {CHROMIUM}: `make setup` installs Debian's chromium")
    pytest.skip(f"no headless Chromium at {CHROMIUM} (`make setup` installs Debian's chromium)")


COLOURS = [(230, 20, 20), (20, 200, 40), (30, 60, 230)]  # one per picture: each must show in the screenshot


@pytest.mark.slow  # a browser start: a few seconds
def test_chromium_renders_every_image(tmp_path):
    browser = _browser()
    pictures = [np.broadcast_to(np.array(colour, dtype=np.uint8), (32, 32, 3)) for colour in COLOURS]
    rows = [
        {"name": "a.png", "scores": {"iou": 0.5}, "pictures": [("input", pictures[0]), ("model", pictures[1])]},
        {"name": "b.png", "scores": {"iou": 0.25}, "pictures": [("input", pictures[2])]},
    ]
    page = write_gallery(rows, tmp_path / "gallery.html", thumbnail=160)
    screenshot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    flags += ["--hide-scrollbars", "--force-device-scale-factor=1"]
    command = [str(browser), *flags, f"--screenshot={screenshot}", "--window-size=1000,800", page.as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    shot = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)  # (800, 1000, 3)
    shown = {colour: int((np.abs(shot - np.array(colour)).sum(-1) < 30).sum()) for colour in COLOURS}
    # each picture a 160x160 thumbnail (device scale 1): a picture that did not load shows none of its colour
    assert all(count > 0.9 * 160 * 160 for count in shown.values()), f"pixels of each picture's colour: {shown}"
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
