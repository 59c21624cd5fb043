"""Revisited Oxford and Paris (Radenovic et al., CVPR 2018): ground truth and images in revisitop's layout.

Layout: ``<root>/<dataset>/gnd_<dataset>.pkl`` and ``<root>/<dataset>/jpg/<name>.jpg`` for
``dataset`` in ``roxford5k``, ``rparis6k``. The ground-truth pickle is a dict with ``imlist``
(database names, no extension), ``qimlist`` (query names) and ``gnd``: one dict per query with
``bbx`` (the query box ``[x0, y0, x1, y1]``) and ``easy``, ``hard``, ``junk`` (indices into ``imlist``).
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path

from .folders import ImageList

DATASETS = ("roxford5k", "rparis6k")

# The only globals a revisitop pickle may name: numpy arrays and scalars. Anything else (a function,
# a class with side effects) is refused, so reading a ground-truth file never executes code.
_SAFE_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a plain container or numpy array")
        return super().find_class(module, name)


def load_gnd(path: str | os.PathLike) -> dict:
    """Read a revisitop ``gnd_*.pkl`` without executing code: only containers and numpy arrays are allowed.

    Raises:
        ValueError: the file holds something else, or lacks ``imlist``, ``qimlist`` or ``gnd``.
    """
    data = Path(path).read_bytes()
    try:
        gnd = _SafeUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: {error}") from error
    if not isinstance(gnd, dict) or not {"imlist", "qimlist", "gnd"} <= set(gnd):
        raise ValueError(f"{path} is not a revisitop ground-truth file (expected keys imlist, qimlist, gnd)")
    if len(gnd["gnd"]) != len(gnd["qimlist"]):
        raise ValueError(f"{path}: {len(gnd['gnd'])} ground-truth entries for {len(gnd['qimlist'])} queries")
    return gnd


def revisitop_datasets(
    root: str | os.PathLike, dataset: str, transform: Callable | None = None, crop_queries: bool = True
) -> tuple[ImageList, ImageList, dict]:
    """The database, the queries (cropped to their boxes, as the protocol requires) and the ground truth.

    Labels of both image lists are their indices. ``crop_queries=False`` reproduces DINO's
    ``eval_image_retrieval.py``, which uses whole query images.

    Raises:
        ValueError: an unknown dataset name.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    folder = Path(root) / dataset
    gnd = load_gnd(folder / f"gnd_{dataset}.pkl")
    path = lambda name: str(folder / "jpg" / f"{name}.jpg")
    database = ImageList([(path(name), i) for i, name in enumerate(gnd["imlist"])], transform)
    boxes = [tuple(float(v) for v in entry["bbx"]) for entry in gnd["gnd"]] if crop_queries else None
    queries = ImageList([(path(name), i) for i, name in enumerate(gnd["qimlist"])], transform, boxes)
    return database, queries, gnd
