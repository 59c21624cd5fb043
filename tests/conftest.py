"""Fixtures shared by the whole suite: tiny models, image folders, bench exports and a torchrun launcher.

Tests ask for these by fixture name (pytest runs with ``--import-mode=importlib``). Module-level code that
cannot take a fixture (parametrize tables, reference builders, ``tests/train/conftest.py``) imports the plain
names instead: ``from tests.conftest import TINY_VIT`` (also ``TINY_VIT_YAML``, ``TINY_CONVNEXT``,
``train_overrides``, ``demo_report``, ``DEMO_REPORTS``, ``write_report_runs``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).parents[1]

# A width-32 ViT on 32x32 images with 8x8 patches (a 4x4 grid): a forward pass takes milliseconds on one CPU thread.
TINY_VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
# The same as ``key=value`` words (``--model-kwargs``) and as a YAML flow mapping (``model.kwargs=...``).
TINY_VIT_ARGS = [f"{key}={value}" for key, value in TINY_VIT.items()]
TINY_VIT_YAML = "{" + ", ".join(f"{key}: {value}" for key, value in TINY_VIT.items()) + "}"
# A 4-stage ConvNeXt of one block per stage and widths 8..32 (timm ``ConvNeXt`` keyword arguments).
TINY_CONVNEXT = {"depths": (1, 1, 1, 1), "dims": (8, 16, 24, 32)}

TORCHRUN = Path(sys.executable).parent / "torchrun"


@pytest.fixture
def tiny_vit_kwargs() -> dict:
    """A fresh copy of ``TINY_VIT``: timm keyword arguments of the tiny ViT."""
    return dict(TINY_VIT)


@pytest.fixture
def tiny_vit_args() -> list[str]:
    """``TINY_VIT`` as ``key=value`` words for ``--model-kwargs``."""
    return list(TINY_VIT_ARGS)


@pytest.fixture
def tiny_vit() -> Callable:
    """``tiny_vit(pool="simpool", num_classes=0, **kwargs)``: ``vit_tiny_patch16_224`` shrunk to ``TINY_VIT``.

    ``kwargs`` override ``TINY_VIT`` (``depth=2``, ``dynamic_img_size=True``, ...).
    """
    from simpool.models import create_model

    def build(pool: str = "simpool", num_classes: int = 0, **kwargs):
        return create_model("vit_tiny_patch16_224", pool=pool, num_classes=num_classes, **{**TINY_VIT, **kwargs})

    return build


@pytest.fixture
def tiny_resnet() -> Callable:
    """``tiny_resnet(pool="simpool", num_classes=2, name="resnet18", **kwargs)``: a timm ResNet (fast at 32 px)."""
    from simpool.models import create_model

    def build(pool: str = "simpool", num_classes: int = 2, name: str = "resnet18", **kwargs):
        return create_model(name, pool=pool, num_classes=num_classes, **kwargs)

    return build


@pytest.fixture
def tiny_convnext() -> Callable:
    """``tiny_convnext(pool="simpool", num_classes=2, **kwargs)``: ``convnext_atto`` shrunk to ``TINY_CONVNEXT``."""
    from simpool.models import create_model

    def build(pool: str = "simpool", num_classes: int = 2, **kwargs):
        return create_model("convnext_atto", pool=pool, num_classes=num_classes, **{**TINY_CONVNEXT, **kwargs})

    return build


def _square_on_noise(rng: np.random.Generator, c: int, size: int) -> np.ndarray:
    """A square bright in colour channel ``c % 3`` at a random place on dark noise."""
    image = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
    half = size // 2
    y, x = rng.integers(0, size - half, size=2)
    image[y : y + half, x : x + half, c % 3] = 250
    return image


def write_image_folder(
    root: Path,
    classes: int = 2,
    per_class: int = 8,
    size: int | tuple[int, int] = 32,
    seed: int = 0,
    *,
    colours: Sequence[Sequence[int]] | None = None,
    noise: float = 20.0,
    pattern: str = "square",
    class_names: Sequence[str] | None = None,
    suffix: str = ".png",
) -> Path:
    """``root/<class>/<i><suffix>``, one folder per class; returns ``root``.

    Args:
        root: the folder to fill (created).
        classes: number of classes (``len(colours)`` or ``len(class_names)`` when given).
        per_class: images per class.
        size: image side, or ``(height, width)``.
        seed: seed of the NumPy generator drawing the pixels.
        colours: one RGB colour per class: every image is its class colour plus Gaussian ``noise``.
        noise: standard deviation of the noise around ``colours``.
        pattern: without ``colours``: "square" (class c is a square bright in colour channel c % 3 on dark
            noise; colour survives flips and crops, so a tiny model learns it in a few updates) or "noise"
            (uniform noise, for layout tests).
        class_names: folder names; ``class_{c}`` by default.
        suffix: file suffix, which picks the format (".png", ".jpg", ".JPEG").
    """
    rng = np.random.default_rng(seed)
    height, width = (size, size) if isinstance(size, int) else size
    if colours is not None:
        classes = len(colours)
    if class_names is not None:
        classes = len(class_names)
    for c in range(classes):
        folder = root / (class_names[c] if class_names is not None else f"class_{c}")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            if colours is not None:
                pixels = np.array(colours[c]) + rng.normal(0, noise, (height, width, 3))
                image = np.clip(pixels, 0, 255).astype(np.uint8)
            elif pattern == "square":
                if height != width:
                    raise ValueError("the square pattern needs a square image")
                image = _square_on_noise(rng, c, height)
            elif pattern == "noise":
                image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            else:
                raise ValueError(f"unknown pattern {pattern!r}; valid: square, noise")
            Image.fromarray(image).save(folder / f"{i:03d}{suffix}")
    return root


@pytest.fixture(name="write_image_folder")
def write_image_folder_fixture() -> Callable[..., Path]:
    """The ImageFolder writer ``write_image_folder(root, classes, per_class, size, seed, ...)``."""
    return write_image_folder


@pytest.fixture
def bench_export(tmp_path: Path) -> Callable[..., Path]:
    """``bench_export(fmt, variant="original", split="test", num_images=8, root=tmp_path/"bench")``: the bench on disk.

    A thin wrapper over ``simpool.data.bench_export.export`` (no progress bar); returns ``root``.
    """
    from simpool.data.bench_export import export

    def write(fmt: str, variant: str = "original", split: str = "test", num_images: int = 8, root: Path | None = None):
        root = tmp_path / "bench" if root is None else root
        export(root, fmt, variant, split=split, num_images=num_images, progress=False)
        return root

    return write


def train_overrides(data: Path, output: Path, **extra) -> list[str]:
    """``key=value`` overrides of a training config for a deterministic tiny CPU run of ``TINY_VIT``.

    No augmentation beyond crop and flip; ``extra`` adds or replaces keys, ``__`` standing for ``.``
    (``train__epochs=2``).
    """
    values = {
        "model.name": "vit_tiny_patch16_224",
        "model.kwargs": TINY_VIT_YAML,
        "data.root": str(data),
        "data.img_size": 32,
        "data.num_workers": 0,
        "data.color_jitter": 0.0,
        "data.crop_pct": 1.0,
        "data.scale": "[0.5, 1.0]",
        "train.output": str(output),
        "train.name": "run",
        "train.device": "cpu",
        "train.num_threads": 1,
        "train.log_every": 1,
        "mixup.smoothing": 0.0,
        "sched.warmup_epochs": 0,
        "optim.lr": 1e-3,
        "optim.weight_decay": 0.0,
    }
    values.update({key.replace("__", "."): value for key, value in extra.items()})
    return [f"{key}={value}" for key, value in values.items()]


@pytest.fixture(name="train_overrides")
def train_overrides_fixture() -> Callable[..., list[str]]:
    """``train_overrides(data, output, **extra)``: ``key=value`` overrides of a tiny deterministic CPU run."""
    return train_overrides


@pytest.fixture
def torchrun() -> Callable[..., subprocess.CompletedProcess]:
    """``torchrun(*args, nproc=2, timeout=240)``: ``torchrun --standalone`` from this venv, one thread a process.

    ``args`` follow the launcher's own (a script path, or ``"-m", "simpool.cli", ...``); runs in the repository
    root with the repository on ``PYTHONPATH``. Skips the test where torchrun is not installed.
    """
    if shutil.which("torchrun", path=str(TORCHRUN.parent)) is None:
        pytest.skip("no torchrun")

    def launch(*args: str | Path, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={nproc}", *map(str, args)]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)

    return launch


# Hand-made ``simpool demo`` reports for pairing seeds (``simpool demo --pair``): the final and matched scores a
# pairing reads and every image-independent baseline, without training anything.
DEMO_FINAL = {"acc_original": 0.8, "acc_mixed_same": 0.7, "acc_mixed_rand": 0.6, "bg_gap": 0.1, "mask_mass": 0.3}


def demo_scores(box: float, pxap: float, corloc: float) -> dict:
    return {"MaxBoxAccV2": box, "PxAP": pxap, "CorLoc": corloc, "mask_mass": 0.3}


def demo_report(seed: int, sim: tuple[float, float, float], cls=(40.0, 30.0, 20.0), **config) -> dict:
    """A report whose SimPool - CLS is ``sim`` - ``cls`` (MaxBoxAccV2, PxAP, CorLoc), final and matched alike."""
    results = {"cls": {**DEMO_FINAL, **demo_scores(*cls)}, "simpool": {**DEMO_FINAL, **demo_scores(*sim)}}
    matched = {kind: {**r, "step": 10 * (1 + seed) if kind == "cls" else 5} for kind, r in results.items()}
    return {
        "config": {"seed": seed, "eval_split": "test", "epochs": 2.0, **config},
        "results": results,
        "matched": {"level": 0.5 + seed / 100, "results": matched},
        "baselines": {
            "uniform": demo_scores(20.0 + seed, 10.0, 1.0),
            "centre": demo_scores(21.0, 12.0 + seed, 2.0),
            "box_prior": demo_scores(22.0, 13.0, 3.0 + 2 * seed),
            "init": {"cls": demo_scores(19.0, 9.0, 0.0), "simpool": demo_scores(19.0 + seed, 9.0, 0.0)},
            "mean_map": {"cls": demo_scores(30.0, 20.0, 5.0), "simpool": demo_scores(31.0, 20.0, 5.0)},
        },
    }


# Three seeds; SimPool - CLS by seed: MaxBoxAccV2 8, 10, 12; PxAP -1, 2, 5; CorLoc -5, -6, -7
DEMO_REPORTS = [
    demo_report(s, (40.0 + d[0], 30.0 + d[1], 20.0 + d[2]))
    for s, d in enumerate([(8, -1, -5), (10, 2, -6), (12, 5, -7)])
]


def write_report_runs(root: Path, reports: Sequence[dict]) -> list[str]:
    """Each report as ``root/run<i>/report.json``, as a finished demo run leaves it; returns the run folders."""
    runs = []
    for index, content in enumerate(reports):
        run = root / f"run{index}"
        run.mkdir(parents=True)
        (run / "report.json").write_text(json.dumps(content))
        runs.append(str(run))
    return runs
