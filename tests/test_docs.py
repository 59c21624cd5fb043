"""Every ```python and ```bash block of the README and docs/ runs as written, on tiny data, so they cannot drift.

- A Python block runs on its own (``python block.py``) in a temporary folder laid out like the repository root
  (``configs/``, ``docs/`` and ``benchmarks/`` are links): it must import what it uses and define what it reads.
  It runs in a process forked from a server that has imported torch, timm and simpool (:func:`serve`): the same
  as a fresh ``python block.py`` but for those imports' seconds.
- A bash block runs as one ``bash -e`` script in that folder, ``simpool``, ``python`` and ``torchrun`` being this
  venv's, after the substitutions of :data:`SUBSTITUTIONS`: dataset paths of the docs become tiny exports of the
  bench made here (:func:`workspace`), and a training line on one of them stops after one update. Its ``simpool``
  commands run in children forked from a server that has imported torch, timm and simpool
  (:mod:`tests.command_server`): the same as the console script, without its seconds of imports each.
- A checkpoint a line reads (``--checkpoint [LABEL=]NAME.safetensors``, a bare file name that no earlier line of the
  block writes) is made first, with the model, pool and kwargs the line names (:func:`make_checkpoints`).
- A block that cannot run here says so in the doc, on the line before its fence: ``<!-- not run: needs 8 GPUs -->``.
  Those, and only those, are skipped; ``test_not_run_blocks_are_listed`` names them.
- Blocks that train (or take minutes) are marked slow (:data:`SLOW`), and so is every bash block: each of its
  commands is a fresh process that imports torch (seconds each). ``make test-fast`` runs the Python blocks.
- What several blocks need is made once a session, and once for all pytest-xdist workers (:func:`once`): the
  workspace; each random checkpoint (one file per model, pool and kwargs, copied under the names the lines read);
  and what a block's leading bench lines make (:data:`SHARED`: bench exports and trainings on the bench), kept per
  beginning of a block (:func:`shared_outputs`), so that blocks beginning with the same lines share one bench
  export and one tiny trained model instead of each making its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn

import pytest

from tests import command_server as command_server_module
from tests.conftest import write_image_folder

REPO = Path(__file__).parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<reason>.+?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>python|bash)\s*$")
TIMEOUT = int(os.environ.get("SIMPOOL_DOCS_TIMEOUT", 900))  # seconds per block

# Dataset paths of the docs -> folders of the workspace (regular expressions, applied in this order; a path is
# matched whole: not followed by more of a path). A training line on ImageNet stops after one update of 2 images in
# float32 (bf16 autocast on a CPU without bf16 units is slow; the engine's tests cover it on a tiny model).
SMOKE = "train.max_updates=1 train.batch_size=2 train.amp=none data.num_workers=0 train.num_threads=1 train.output=runs"
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
# A line that writes only new files, from the bench alone or from what the lines before it wrote: what a block's
# leading run of such lines makes is shared by the blocks that begin with the same lines (:func:`shared_outputs`).
SHARED = re.compile(r"^simpool (bench export\b|train(-dino)? --config configs/(dino_)?bench_)")


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


def make_checkpoints(commands: list[list[str]], workspace: Path, store: Path) -> None:
    """Write the checkpoints the commands read (bare ``*.safetensors`` names after ``--checkpoint``) and no earlier
    command writes: random weights of the model, pool and kwargs each line names, without a classifier. Each is made
    once in ``store`` and copied."""
    written: set[str] = set()
    for words in commands:
        written.update(_option(words, "--out"))
        specs = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "--checkpoint"]
        for spec in specs:
            name = spec.rpartition("=")[2]
            if "/" in name or not name.endswith(".safetensors") or name in written or (workspace / name).exists():
                continue
            model = {
                "model_name": (_option(words, "--model") or ["vit_small_patch16_224"])[0],
                "pool": (_option(words, "--pool") or ["simpool"])[0],
                "pool_kwargs": _kwargs(_option(words, "--pool-kwargs")),
                "model_kwargs": _kwargs(_option(words, "--model-kwargs")),
            }
            made = once(store / _key(repr(sorted(model.items()))), partial(_save_random, **model))
            shutil.copy(made / "model.safetensors", workspace / name)


def _save_random(folder: Path, model_name: str, pool: str, pool_kwargs: dict, model_kwargs: dict) -> None:
    import simpool
    from simpool.models import save_checkpoint

    model = simpool.create_model(model_name, pool=pool, pool_kwargs=pool_kwargs, num_classes=0, **model_kwargs)
    save_checkpoint(model, folder / "model.safetensors")


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def once(folder: Path, make: Callable[[Path], None]) -> Path:
    """``folder``, filled by ``make(folder)`` unless this process or another pytest-xdist worker already did.

    A lock beside the folder makes the others wait; a folder that ``make`` left unfinished is made again.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    done = folder.with_name(folder.name + ".done")
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            done.touch()
    return folder


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """One folder for the whole run: pytest-xdist workers' temporary folders are siblings under one root."""
    root = tmp_path_factory.getbasetemp()
    return (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "docs-shared"


def leading_shared(code: str, workspace: Path) -> tuple[list[str], str]:
    """``code`` (a bash block) split into its leading :data:`SHARED` commands and the script that follows them.

    The commands come back as shell lines without comments (``shlex.join`` of their words); blank and comment lines
    before the split go with them. A line that names the workspace is not shared: it differs from block to block.
    """
    lines = re.sub(r"\\\n", " ", code).splitlines()
    shared: list[str] = []
    for i, line in enumerate(lines):
        words = command_lines(line)
        if not words:
            continue
        if SHARED.match(" ".join(words[0])) is None or str(workspace) in line:
            return shared, "\n".join(lines[i:]) + "\n"
        shared.append(shlex.join(words[0]))
    return shared, ""


def shared_outputs(lines: list[str], store: Path, workspace: Path) -> Path:
    """A folder of the files that ``lines`` write when run one after another in the workspace, made once.

    ``lines[:-1]`` is looked up (or made) first, so blocks that begin alike share what their common beginning made.
    """

    def make(out: Path) -> None:
        for entry in workspace.iterdir():  # read-only: the lines write new files only
            (out / entry.name).symlink_to(entry)
        if len(lines) > 1:
            shutil.copytree(shared_outputs(lines[:-1], store, workspace), out, symlinks=True, dirs_exist_ok=True)
        result = _run(["bash", "-e", "-x", "-c", lines[-1]], out, _environment(out.with_name(out.name + ".home")))
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-3000:]
            pytest.fail(f"{lines[-1]} (shared) exited {result.returncode}:\n{output}", pytrace=False)
        for entry in workspace.iterdir():
            (out / entry.name).unlink()

    return once(store / "lines" / _key("\n".join(lines)), make)


@pytest.fixture(scope="session")
def workspace(store: Path) -> Path:
    """A folder laid out like the repository root, with tiny stand-ins of the datasets the docs name."""
    return once(store / "workspace", make_workspace)


def make_workspace(root: Path) -> None:
    """Fill ``root`` like the repository root (links to ``configs/``, ``docs/``, ``benchmarks/``) and write the
    tiny datasets: ImageFolder (the ImageNet stand-in), ImageNet-9, VOC07, wsolevaluation and a folder of photos."""
    from simpool.data.bench_export import export

    for name in ("configs", "docs", "benchmarks"):
        (root / name).symlink_to(REPO / name)
    data = root / "data"
    export(data / "imagenet", "imagefolder", split="train", num_images=24, progress=False)  # all 10 classes
    export(data / "imagenet", "imagefolder", split="val", num_images=10, progress=False)
    export(data / "in9", "in9", "all", split="test", num_images=10, progress=False)
    export(data / "voc", "voc", split="test", num_images=6, progress=False)
    main = data / "voc" / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    shutil.copy(main / "test.txt", main / "trainval.txt")  # the split discovery reads
    export(data / "wsol", "wsol", split="test", num_images=6, progress=False)
    write_image_folder(data / "photos", classes=1, per_class=1, size=64)  # read at 896 px


# The command server of this pytest process (:func:`command_server`): its socket and the folder of its client.
COMMANDS: dict[str, str] = {}


def _environment(home: Path) -> dict:
    venv = Path(sys.executable).parent
    shim = f"{COMMANDS['shim']}{os.pathsep}" if COMMANDS else ""
    server = {command_server_module.VARIABLE: COMMANDS["socket"]} if COMMANDS else {}
    return {
        **os.environ,
        **server,
        "PATH": f"{shim}{venv}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "MPLBACKEND": "Agg",
        "HOME": str(home),  # caches and downloads stay in the workspace
    }


def _run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """``command`` in ``cwd``; fails the test, with the end of its output, when it runs past :data:`TIMEOUT`."""
    try:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as timeout:
        output = ((timeout.stdout or b"") + (timeout.stderr or b"")).decode(errors="replace")[-3000:]
        pytest.fail(f"{' '.join(command)[:200]} still running after {TIMEOUT} s:\n{output}", pytrace=False)


def serve() -> None:
    """The Python-block server (``python tests/test_docs.py``): imports torch, timm and simpool once, then runs each
    block that stdin names (a JSON line: ``cwd``, ``env``, ``log``) as ``python block.py`` would, in a child forked
    from itself, and answers one line: the child's exit code, or ``timeout`` after :data:`TIMEOUT` seconds."""
    import simpool  # noqa: F401  (and with it torch and timm: the imports that take a fresh process seconds)

    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            _run_block(**json.loads(line))
        deadline = time.monotonic() + TIMEOUT
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        if status[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status[1]) if status[0] else "timeout", flush=True)


def _run_block(cwd: str, env: dict, log: str) -> NoReturn:
    """In the forked child: ``block.py`` as ``__main__`` in ``cwd`` with ``env``, stdout and stderr into ``log``."""

    def work() -> int:
        output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv, sys.path[0] = ["block.py"], cwd
        runpy.run_path("block.py", run_name="__main__")
        return 0

    command_server_module.exit_in_child(work)


@pytest.fixture(scope="session")
def python_server(tmp_path_factory):
    """One :func:`serve` process for this pytest process (each pytest-xdist worker has its own)."""
    home = tmp_path_factory.mktemp("python-server")
    server = subprocess.Popen(
        [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_environment(home)
    )
    yield server
    server.stdin.close()
    server.wait(timeout=60)


@pytest.fixture(scope="session")
def command_server(tmp_path_factory):
    """One :mod:`tests.command_server` for this pytest process: from then on the bash blocks' ``simpool`` runs in
    a child forked from it (:data:`COMMANDS`)."""
    folder = tmp_path_factory.mktemp("commands")
    socket_path = folder / "socket"
    script = Path(command_server_module.__file__)
    server = subprocess.Popen(
        [sys.executable, str(script), str(socket_path)], stdout=subprocess.PIPE, text=True, env=_environment(folder)
    )
    if server.stdout.readline().strip() != "ready":
        pytest.fail(f"the command server did not start ({server.wait(timeout=60)})", pytrace=False)
    COMMANDS.update(socket=str(socket_path), shim=str(command_server_module.write_shim(folder / "bin")))
    yield COMMANDS
    COMMANDS.clear()
    server.kill()
    server.wait(timeout=60)


def run_python_block(server: subprocess.Popen, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """``python block.py`` in ``cwd`` with ``env``, through the server; fails the test when it runs past
    :data:`TIMEOUT`."""
    log = cwd / "block.log"
    server.stdin.write(json.dumps({"cwd": str(cwd), "env": env, "log": str(log)}) + "\n")
    server.stdin.flush()
    answer = server.stdout.readline().strip()
    output = log.read_text(errors="replace") if log.exists() else ""
    if answer == "timeout":
        pytest.fail(f"python block.py still running after {TIMEOUT} s:\n{output[-3000:]}", pytrace=False)
    if not answer:
        pytest.fail(f"the Python-block server exited ({server.poll()}):\n{output[-3000:]}", pytrace=False)
    return subprocess.CompletedProcess(["python", "block.py"], int(answer), output, "")


def _params():
    for block in BLOCKS:
        marks = [pytest.mark.slow] if block.lang == "bash" or SLOW.search(block.code) else []
        if block.not_run is not None:
            marks.append(pytest.mark.skip(reason=f"not run: {block.not_run}"))
        yield pytest.param(block, id=block.id, marks=marks)


@pytest.mark.parametrize("block", list(_params()))
def test_doc_block_runs(block: Block, workspace: Path, store: Path, request, tmp_path: Path):
    cwd = tmp_path / "cwd"
    shutil.copytree(workspace, cwd, symlinks=True)
    code = substitute(block.code, cwd / "data")
    if block.lang == "python":
        (cwd / "block.py").write_text(code)
        result = run_python_block(request.getfixturevalue("python_server"), cwd, _environment(cwd))
    else:
        request.getfixturevalue("command_server")
        env = _environment(cwd)
        commands = command_lines(code)
        reason = refusal(commands)
        if reason is not None:
            pytest.fail(f"{block.id} {reason}")
        make_checkpoints(commands, cwd, store / "checkpoints")
        shared, code = leading_shared(code, cwd)
        if shared:
            shutil.copytree(shared_outputs(shared, store, workspace), cwd, symlinks=True, dirs_exist_ok=True)
        (cwd / "block.sh").write_text(code)
        result = _run(["bash", "-e", "-x", "block.sh"], cwd, env)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        pytest.fail(f"{block.id} ({block.lang}) exited {result.returncode}:\n{output}", pytrace=False)


def test_not_run_blocks_are_listed():
    """The blocks the docs mark ``not run``, with their reasons: every other block runs."""
    marked = {block.id: block.not_run for block in BLOCKS if block.not_run is not None}
    for block_id, reason in marked.items():
        print(f"not run: {block_id}: {reason}")
    assert all(reason.strip() for reason in marked.values())


def list_pools_comments(blocks: list[Block]) -> dict[str, list[str]]:
    """The pool names (quoted words) of the comment after each ``list_pools()`` of ``blocks``, by block id and line:
    the comment on its line and the comment lines right after it."""
    comments = {}
    for block in blocks:
        lines = block.code.splitlines()
        for i, line in enumerate(lines):
            if "list_pools()" not in line:
                continue
            comment = line.partition("#")[2]
            for after in lines[i + 1 :]:
                if not after.lstrip().startswith("#"):
                    break
                comment += after
            comments[f"{block.id}+{i + 1}"] = re.findall(r"'([a-z0-9_]+)'", comment)
    return comments


def test_list_pools_comments_name_the_registry():
    """Every ``list_pools()`` in the docs carries a comment naming the registered pools, all of them, in order."""
    import simpool

    comments = list_pools_comments(BLOCKS)
    assert {"README.md", "docs/pooling.md"} <= {where.partition(":")[0] for where in comments}
    assert comments == dict.fromkeys(comments, simpool.list_pools())


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
    code = "x = f()\nsimpool.list_pools()  # ['a', 'b',\n#  'c'] and more\nprint('d')  # 'e'\n"
    assert list_pools_comments([Block(REPO / "doc.md", 1, "python", code, None)]) == {"doc.md:1+2": ["a", "b", "c"]}


def test_the_python_server_runs_a_block_as_python_would(python_server, tmp_path):
    (tmp_path / "block.py").write_text("import os, sys\nprint(os.getcwd(), os.environ['X'], sys.argv)\nsys.exit(3)\n")
    result = run_python_block(python_server, tmp_path, {**os.environ, "X": "y"})
    assert (result.returncode, result.stdout) == (3, f"{tmp_path} y ['block.py']\n")
    (tmp_path / "block.py").write_text("torch.zeros(1)\n")  # the server imported torch, the block did not
    result = run_python_block(python_server, tmp_path, dict(os.environ))
    assert result.returncode == 1 and "NameError: name 'torch' is not defined" in result.stdout
    (tmp_path / "block.py").write_text("raise SystemExit('no data')\n")
    assert run_python_block(python_server, tmp_path, dict(os.environ)).stdout == "no data\n"


COMMANDS_CASES = {  # id: (arguments, exit code)
    "help": (["--help"], 0),
    "mistake": (["demo", "--preset", "nope"], 2),
    "writes-in-its-folder": (
        ["bench", "export", "--split", "test", "--num-images", "2", "--out", "x", "--no-progress"],
        0,
    ),
}


@pytest.mark.parametrize("argv, code", COMMANDS_CASES.values(), ids=COMMANDS_CASES)
def test_the_command_server_runs_simpool_as_the_console_script_does(command_server, tmp_path, argv, code):
    """Through the server (the command logged in served.jsonl) and through the real script (no server named): the
    same exit code, stdout, stderr and files, in the caller's folder."""
    served = Path(command_server["socket"]).with_name(command_server_module.SERVED)
    outputs = []
    for name in ("served", "real"):
        folder = tmp_path / name
        folder.mkdir()
        env = _environment(folder)
        if name == "real":
            del env[command_server_module.VARIABLE]
        before = served.read_text().splitlines() if served.exists() else []
        result = subprocess.run(["simpool", *argv], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        logged = served.read_text().splitlines()[len(before) :] if served.exists() else []
        assert logged == ([json.dumps(argv)] if name == "served" else [])
        files = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        outputs.append((result.returncode, result.stdout, result.stderr, files))
    assert outputs[0] == outputs[1] and outputs[0][0] == code


def test_leading_bench_lines_are_shared_and_made_once(tmp_path):
    code = (
        "# a comment\nsimpool bench export --out 'a b'  # why\n"
        "simpool train --config configs/bench_vit.yaml \\\n  train.epochs=1\n"
        "simpool probe --data x\nsimpool bench export\n"
    )
    shared = ["simpool bench export --out 'a b'", "simpool train --config configs/bench_vit.yaml train.epochs=1"]
    assert leading_shared(code, Path("/w")) == (shared, "simpool probe --data x\nsimpool bench export\n")
    assert leading_shared("simpool bench export --out /w/x\n", Path("/w")) == ([], "simpool bench export --out /w/x\n")
    assert leading_shared("simpool bench export\n", Path("/w")) == (["simpool bench export"], "")
    made = []
    assert [once(tmp_path / "f", made.append) for _ in range(2)] == [tmp_path / "f"] * 2
    assert made == [tmp_path / "f"]


if __name__ == "__main__":
    serve()
