"""The HTML gallery: self-contained, sortable by score; an opt-in screenshot in headless Chromium."""

import base64
import io
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


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (Debian's chromium) is not installed")
def test_chromium_renders_the_images(tmp_path):
    color = (0, 200, 0)
    page = write_gallery(entries(color), tmp_path / "gallery.html", thumbnail=200)
    screenshot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    command = [str(CHROMIUM), *flags, f"--screenshot={screenshot}", "--window-size=1000,800", page.as_uri()]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    shot = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    green = (np.abs(shot - np.array(color)).sum(-1) < 30).sum()
    # three 200x200 thumbnails (CSS pixels; a device scale of at least 1): most of 3 * 40000 pixels
    assert green > 0.8 * 3 * 200 * 200, f"only {green} pixels of the pictures' color in the screenshot"
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
