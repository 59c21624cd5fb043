"""Every ```python and ```bash block of the README and docs/ runs as written, on tiny data, so they cannot drift.

- A Python block runs on its own (``python block.py``) in a temporary folder laid out like the repository root
  (``configs/``, ``docs/`` and ``benchmarks/`` are links): it must import what it uses and define what it reads.
- A bash block runs as one ``bash -e`` script in that folder, ``simpool``, ``python`` and ``torchrun`` being this
  venv's, after the substitutions of :data:`SUBSTITUTIONS`: dataset paths of the docs become tiny exports of the
  bench made here (:func:`workspace`), and a training line on one of them stops after one update.
- A checkpoint a line reads (``--checkpoint [LABEL=]NAME.safetensors``, a bare file name that no earlier line of the
  block writes) is made first, with the model, pool and kwargs the line names (:func:`make_checkpoints`).
- A block that cannot run here says so in the doc, on the line before its fence: ``<!-- not run: needs 8 GPUs -->``.
  Those, and only those, are skipped; ``test_not_run_blocks_are_listed`` names them.
- Blocks that train (or take minutes) are marked slow (:data:`SLOW`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import write_image_folder

REPO = Path(__file__).parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.+?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>python|bash)\s*$")
TIMEOUT = int(os.environ.get("SIMPOOL_DOCS_TIMEOUT", 900))  # seconds per block

# Dataset paths of the docs -> folders of the workspace (regular expressions, applied in this order; a path is
# matched whole: not followed by more of a path). A training line on ImageNet stops after one update of 8 images.
SMOKE = "train.max_updates=1 train.batch_size=8 data.num_workers=0 train.num_threads=1 train.output=runs"
SUBSTITUTIONS: list[tuple[str, str]] = [
    (r"data\.root=/data/imagenet(?=\s|$)", "data.root={ws}/imagenet " + SMOKE),
    (r"/data/imagenet", "{ws}/imagenet"),  # ImageFolder train/ and val/
    (r"data\.root=DIR\b", "data.root={ws}/imagenet " + SMOKE),
    (r"(?<=--data )DIR\b", "{ws}/imagenet"),
    (r"/data/bg_challenge/in_to_in9\.json", "{ws}/in9/in_to_in9.json"),
    (r"/data/bg_challenge", "{ws}/in9"),  # ImageNet-9: <variant>/val/<class>/
    (r"datasets/VOC2007", "{ws}/voc"),  # VOCdevkit/VOC2007 with trainval
    (r"datasets/CUB(?=\s|$)", "{ws}/wsol/dataset"),
    (r"wsolevaluation/metadata/(CUB|ILSVRC)/test", "{ws}/wsol/metadata/test"),
    (r"metadata/ILSVRC/test/localization\.txt", "{ws}/wsol/metadata/test/localization.txt"),
    (r"ILSVRC/val/", "{ws}/wsol/dataset/test/"),
    (r"(?<=\s)(photos|my_images)/", "{ws}/photos/"),
]
# Blocks that train or take minutes: marked slow.
SLOW = re.compile(
    r"simpool (train|train-dino|demo|tournament|probe)\b|eval (linear|finetune|segmentation)\b|torchrun|"
    r"train_throughput|run_tournament|\btrain\(config\)|(image|img)-size 896"
)
PROGRAMS = {"simpool", "python", "torchrun"}  # what a bash line may run; anything else needs a `not run` marker


@dataclass
class Block:
    """One fenced block: where it is, its language, its text and, when marked, why it does not run."""

    path: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def doc_blocks(paths: list[Path] = DOCS) -> list[Block]:
    """The ```python and ```bash blocks of ``paths``, each with the reason of a ``not run`` comment before it."""
    blocks = []
    for path in paths:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            fence = FENCE.match(lines[i])
            if fence is None:
                i += 1
                continue
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = NOT_RUN.match(before)
            code = "\n".join(lines[i + 1 : end]) + "\n"
            blocks.append(Block(path, i + 1, fence["lang"], code, marker["reason"] if marker else None))
            i = end + 1
    return blocks


BLOCKS = doc_blocks()


def substitute(code: str, workspace: Path) -> str:
    """``code`` with the dataset paths of :data:`SUBSTITUTIONS` replaced by the workspace's folders."""
    for pattern, replacement in SUBSTITUTIONS:  # "\0" holds the workspace's place: no rule rewrites a replacement
        code = re.sub(pattern, replacement.replace("{ws}", "\0"), code, flags=re.MULTILINE)
    return code.replace("\0", str(workspace))


def command_lines(code: str) -> list[list[str]]:
    """The commands of a bash block: continuation lines joined, comments dropped, split into words."""
    joined = re.sub(r"\\\n", " ", code)
    commands = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        if words:
            commands.append(words)
    return commands


def refusal(commands: list[list[str]]) -> str | None:
    """Why a bash block cannot run here unmarked: a program other than ``PROGRAMS``, or a multi-process launch."""
    for words in commands:
        program = words[0]
        if program in ("for", "do", "done") or "=" in program:  # a loop over commands, or a variable
            continue
        if program not in PROGRAMS:
            return f"runs {program!r} ({' '.join(words)}): mark the block <!-- not run: REASON -->"
        if program == "torchrun":
            nproc, nodes = _count(words, "--nproc_per_node"), _count(words, "--nnodes")
            if nproc > 2 or nodes > 1:
                return f"launches {nproc} processes on {nodes} node(s): mark the block <!-- not run: needs GPUs -->"
    return None


def _count(words: list[str], flag: str) -> int:
    """The integer of ``--flag=N`` or ``--flag N`` among ``words`` (1 when absent)."""
    match = re.search(rf"{flag}[= ](\d+)", " ".join(words))
    return int(match[1]) if match else 1


def _option(words: list[str], name: str) -> list[str]:
    """The values after ``name`` up to the next option."""
    if name not in words:
        return []
    values = []
    for word in words[words.index(name) + 1 :]:
        if word.startswith("--"):
            break
        values.append(word)
    return values


def _kwargs(pairs: list[str]) -> dict:
    import yaml

    return {key: yaml.safe_load(value) for key, _, value in (pair.partition("=") for pair in pairs)}


def make_checkpoints(commands: list[list[str]], workspace: Path) -> None:
    """Write the checkpoints the commands read (bare ``*.safetensors`` names after ``--checkpoint``) and no earlier
    command writes: random weights of the model, pool and kwargs each line names, without a classifier."""
    import simpool
    from simpool.models import save_checkpoint

    written: set[str] = set()
    for words in commands:
        written.update(_option(words, "--out"))
        specs = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--checkpoint"]
        for spec in specs:
            name = spec.rpartition("=")[2]
            if "/" in name or not name.endswith(".safetensors") or name in written or (workspace / name).exists():
                continue
            model_name = (_option(words, "--model") or ["vit_small_patch16_224"])[0]
            pool = (_option(words, "--pool") or ["simpool"])[0]
            model = simpool.create_model(
                model_name,
                pool=pool,
                pool_kwargs=_kwargs(_option(words, "--pool-kwargs")),
                num_classes=0,
                **_kwargs(_option(words, "--model-kwargs")),
            )
            save_checkpoint(model, workspace / name)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder laid out like the repository root, with tiny stand-ins of the datasets the docs name."""
    from simpool.data.bench_export import export

    root = tmp_path_factory.mktemp("docs")
    for name in ("configs", "docs", "benchmarks"):
        (root / name).symlink_to(REPO / name)
    data = root / "data"
    export(data / "imagenet", "imagefolder", split="train", num_images=40, progress=False)
    export(data / "imagenet", "imagefolder", split="val", num_images=20, progress=False)
    export(data / "in9", "in9", "all", split="test", num_images=10, progress=False)
    export(data / "voc", "voc", split="test", num_images=6, progress=False)
    main = data / "voc" / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    shutil.copy(main / "test.txt", main / "trainval.txt")  # the split discovery reads
    export(data / "wsol", "wsol", split="test", num_images=6, progress=False)
    write_image_folder(data / "photos", classes=1, per_class=2, size=64)
    return root


def _environment(workspace: Path) -> dict:
    venv = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "MPLBACKEND": "Agg",
        "HOME": str(workspace),  # caches and downloads stay in the workspace
    }


def _params():
    for block in BLOCKS:
        marks = [pytest.mark.slow] if SLOW.search(block.code) else []
        if block.not_run is not None:
            marks.append(pytest.mark.skip(reason=f"not run: {block.not_run}"))
        yield pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", list(_params()))
def test_doc_block_runs(block: Block, workspace: Path, tmp_path: Path):
    cwd = tmp_path / "cwd"
    shutil.copytree(workspace, cwd, symlinks=True)
    code = substitute(block.code, cwd / "data")
    env = _environment(cwd)
    if block.lang == "python":
        (cwd / "block.py").write_text(code)
        command = [sys.executable, "block.py"]
    else:
        commands = command_lines(code)
        reason = refusal(commands)
        if reason is not None:
            pytest.fail(f"{block.id} {reason}")
        make_checkpoints(commands, cwd)
        (cwd / "block.sh").write_text(code)
        command = ["bash", "-e", "-x", "block.sh"]
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as timeout:
        output = ((timeout.stdout or b"") + (timeout.stderr or b"")).decode(errors="replace")[-3000:]
        pytest.fail(f"{block.id} ({block.lang}) still running after {TIMEOUT} s:\n{output}", pytrace=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        pytest.fail(f"{block.id} ({block.lang}) exited {result.returncode}:\n{output}", pytrace=False)


def test_not_run_blocks_are_listed():
    """The blocks the docs mark ``not run``, with their reasons: every other block runs."""
    marked = {block.id: block.not_run for block in BLOCKS if block.not_run is not None}
    for block_id, reason in marked.items():
        print(f"not run: {block_id}: {reason}")
    assert all(reason.strip() for reason in marked.values())


def test_the_harness_finds_blocks_markers_and_substitutions(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "text\n```python\nprint(1)\n```\n\n"
        "<!-- not run: needs 8 GPUs -->\n\n```bash\ntorchrun --nproc_per_node=8 x\n```\n"
        "```text\nnot a block\n```\n"
        "```bash\nsimpool eval knn --data /data/imagenet \\\n  --checkpoint a=b.safetensors  # c\n```\n"
    )
    blocks = doc_blocks([doc])
    assert [(b.line, b.lang, b.not_run) for b in blocks] == [
        (2, "python", None),
        (8, "bash", "needs 8 GPUs"),
        (14, "bash", None),
    ]
    assert refusal(command_lines(blocks[1].code)).startswith("launches 8 processes")
    assert refusal([["make", "test"]]).startswith("runs 'make'")
    assert command_lines(substitute(blocks[2].code, Path("/w"))) == [
        ["simpool", "eval", "knn", "--data", "/w/imagenet", "--checkpoint", "a=b.safetensors"]
    ]
    assert substitute("data.root=/data/imagenet x", Path("/w/data")) == f"data.root=/w/data/imagenet {SMOKE} x"
    assert substitute("data.root=/data/imagenet/train", Path("/w/data")) == "data.root=/w/data/imagenet/train"
