"""The ADE20K layout (ADEChallengeData2016): ``images/<split>/*.jpg`` beside ``annotations/<split>/*.png``."""

from __future__ import annotations

from pathlib import Path


def ade20k_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """``(image, annotation)`` paths of ``<root>/images/<split>/*.jpg`` and ``<root>/annotations/<split>/*.png``.

    Raises:
        FileNotFoundError: the split has no image, or an image has no annotation.
    """
    images = sorted((Path(root) / "images" / split).glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no images in {Path(root) / 'images' / split}")
    pairs = [(p, Path(root) / "annotations" / split / f"{p.stem}.png") for p in images]
    missing = [str(a) for _, a in pairs if not a.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} annotations missing, e.g. {missing[0]}")
    return pairs
