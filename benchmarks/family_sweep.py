"""Every architecture family of timm with a simpool pool: which ones work, and why the others fail.

For one small variant of each family (a module of ``timm.models``; the variant with the fewest
parameters among a short list picked by name, counted on the meta device) and each pool (``simpool``
and ``gem``), built without weights at a small input size (64 px, or the model's own size when it
needs one):

1. ``create_model``, forward and backward (gradients reach the pool);
2. ``forward_head(features, pre_logits=True)`` gives ``(B, head_hidden_size)``;
3. ``reset_classifier(10)`` keeps the pool and the model then gives 10 logits;
4. ``attention_maps`` gives finite ``(B, h, w)`` maps;
5. two SGD steps change the weights and keep the loss finite.

The table goes to ``docs/families.md`` with the share of families that work.

Usage:
    python benchmarks/family_sweep.py                       # all families -> docs/families.md
    python benchmarks/family_sweep.py --families swin_transformer levit --out /tmp/families.md
    python benchmarks/family_sweep.py --models efficientnet_b0 --pools simpool
    python benchmarks/family_sweep.py --update --families coat     # rerun rows of docs/families.md
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simpool import attention_maps, create_model  # noqa: E402
from simpool.models import pool_slot  # noqa: E402
from simpool.models.families import UNSUPPORTED, short_name  # noqa: E402

POOLS = ("simpool", "gem")
IMAGE_SIZE = 64
BATCH = 2
# name parts that mark small variants, smallest first; the short list is counted on the meta device
SMALL_WORDS = tuple(
    "test atto femto pico nano xxs xxsmall xx tiny ti xs xsmall mini s0 b0 t0 m0 050 small s t lite light".split()
)
LARGE_WORDS = ("base", "large", "huge", "giant", "gigantic", "enormous", "xl", "xxl", "1b", "3b", "7b")
SHORT_LIST = 4
PARAM_BUDGET = 50_000_000  # larger variants are built with one block when timm takes ``depth``
SHRINK = {"depth": 1}


@dataclass
class Result:
    family: str
    model: str
    outcome: dict[str, str] = field(default_factory=dict)  # pool -> "ok" or the reason it fails
    kwargs: dict = field(default_factory=dict)  # timm kwargs that shrink a large variant
    image_size: int = IMAGE_SIZE
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(outcome == "ok" for outcome in self.outcome.values())


def families() -> dict[str, list[str]]:
    """Model names by family: the module of ``timm.models`` that defines the entrypoint."""
    grouped = defaultdict(list)
    for name in timm.list_models():
        grouped[short_name(timm.models.model_entrypoint(name).__module__)].append(name)
    return dict(sorted(grouped.items()))


def _name_rank(name: str, split_digits: bool = True) -> tuple[int, int, int]:
    """Smaller for names that look smaller: a size word (``tiny``, ``xxs24``), then the first number.

    ``split_digits`` reads ``s8`` as ``s`` (small) too, which ``levit_384_s8`` shows is not always right.
    """
    parts = re.split(r"[_\-.]", name)
    words = [
        part.rstrip("0123456789") if split_digits or len(part.rstrip("0123456789")) > 1 else part for part in parts
    ]
    words = [word or part for word, part in zip(words, parts, strict=True)]
    ranks = [SMALL_WORDS.index(w) for w in words if w in SMALL_WORDS]
    large = any(w in LARGE_WORDS for w in words)
    numbers = re.findall(r"\d+", name)
    rank = (min(ranks) if ranks else len(SMALL_WORDS)) + 10 * large
    return (rank, int(numbers[0]) if numbers else 10**6, len(name))


def parameter_count(name: str, **kwargs) -> int | None:
    """Parameters of ``name`` built on the meta device (no memory, no initialisation cost).

    None for a variant that does not build or is an encoder without classification (``...Encoder``).
    """
    try:
        with torch.device("meta"):
            model = timm.create_model(name, **kwargs)
    except Exception:  # noqa: BLE001 - a variant that does not build is not a candidate
        return None
    if type(model).__name__.endswith("Encoder"):
        return None
    return sum(p.numel() for p in model.parameters())


def shrink_kwargs(name: str) -> dict:
    """``{"depth": 1}`` for a variant over ``PARAM_BUDGET`` parameters that timm can build shallower."""
    count = parameter_count(name)
    if count is None or count <= PARAM_BUDGET:
        return {}
    shallow = parameter_count(name, **SHRINK)
    return dict(SHRINK) if shallow is not None and shallow < count else {}


def smallest_variant(names: list[str]) -> str:
    """The variant with the fewest parameters among a short list of names that look small."""
    shortlist = sorted(names, key=_name_rank)[:SHORT_LIST]
    if shortlist[0].startswith("test_"):  # timm's own tiny test variants
        return shortlist[0]
    strict = sorted(names, key=lambda name: _name_rank(name, split_digits=False))[:SHORT_LIST]
    shortlist += [name for name in strict if name not in shortlist]
    counted = [(count, name) for name in shortlist if (count := parameter_count(name)) is not None]
    return min(counted)[1] if counted else shortlist[0]


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def _input_sizes(name: str) -> list[tuple[dict, int]]:
    """(timm kwargs, image size) to try: 64 px (or the model's minimum), 56 px (patches of 14), 128, its own."""
    cfg = timm.get_pretrained_cfg(name, allow_unregistered=True)
    own = cfg.input_size[-1] if cfg is not None and cfg.input_size else 224
    least = cfg.min_input_size[-1] if cfg is not None and getattr(cfg, "min_input_size", None) else 0
    sizes = (IMAGE_SIZE, 56, 128) if least <= IMAGE_SIZE else (least,)  # 128: nets with large kernels late
    tries = [({"img_size": size}, size) for size in sizes] + [({}, size) for size in sizes]
    if max(sizes) < own <= 256:  # a model that needs its own size (larger ones would need too much memory)
        tries.append(({}, own))
    return tries


def check(name: str, pool: str, timm_kwargs: dict, size: int) -> None:
    """Every step of the module docstring on one model; raises on the first failure."""
    torch.manual_seed(0)
    model = create_model(name, pool=pool, num_classes=5, **timm_kwargs)
    images = torch.randn(BATCH, 3, size, size)
    labels = torch.tensor([0, 3])
    slot = pool_slot(model)
    if slot is None:
        raise AssertionError("no simpool pool in the model")
    logits = model(images)
    if logits.shape != (BATCH, 5):
        raise AssertionError(f"logits {tuple(logits.shape)}")
    F.cross_entropy(logits, labels).backward()
    grads = [p.grad for p in slot.pool.parameters()]
    if any(g is None or not torch.isfinite(g).all() for g in grads):
        raise AssertionError("the pool's parameters get no finite gradient")
    features = model.forward_head(model.forward_features(images), pre_logits=True)
    width = getattr(model, "head_hidden_size", model.num_features)
    if features.shape != (BATCH, width):
        raise AssertionError(f"pre-logits {tuple(features.shape)}, expected {(BATCH, width)}")
    pool = slot.pool
    model.reset_classifier(10)
    if pool_slot(model) is None or pool_slot(model).pool is not pool:
        raise AssertionError("reset_classifier lost the pool")
    if model(images).shape != (BATCH, 10):
        raise AssertionError("reset_classifier(10) does not give 10 logits")
    maps = attention_maps(model.eval(), images)
    if maps.ndim != 3 or maps.shape[0] != BATCH or not torch.isfinite(maps).all():
        raise AssertionError(f"attention maps {tuple(maps.shape)}")
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        if not torch.isfinite(loss):
            raise AssertionError("training loss is not finite")
        loss.backward()
        optimizer.step()
    if all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True)):
        raise AssertionError("two optimizer steps did not change the weights")


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200]


def sweep_model(family: str, name: str, pools=POOLS, timeout: int = 180) -> Result:
    """One variant with each pool; sizes tried in order until one builds and runs the forward pass."""
    result = Result(family, name, kwargs=shrink_kwargs(name))
    start = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for pool in pools:
            outcome = None
            for timm_kwargs, size in _input_sizes(name):
                signal.alarm(timeout)
                try:
                    check(name, pool, {**result.kwargs, **timm_kwargs}, size)
                    outcome = "ok"
                    result.image_size = size
                    break
                except Timeout:
                    outcome = f"timeout after {timeout} s"
                    break
                except ValueError as error:  # our own errors: the family is unsupported, no other size helps
                    outcome = _reason(error)
                    if family in UNSUPPORTED:
                        break
                except Exception as error:  # noqa: BLE001 - any failure is a result
                    outcome = _reason(error)
                finally:
                    signal.alarm(0)
            result.outcome[pool] = outcome
    finally:
        signal.signal(signal.SIGALRM, previous)
    result.seconds = time.perf_counter() - start
    return result


def write_table(results: list[Result], path: Path, pools=POOLS) -> float:
    """``docs/families.md``: a row per family; returns the share of families that work."""
    share = sum(r.ok for r in results) / max(len(results), 1)
    lines = [
        "# timm families with a simpool pool",
        "",
        "Generated by `python benchmarks/family_sweep.py` (timm "
        f"{timm.__version__}, torch {torch.__version__}, CPU). For one small variant of each family "
        "(a module of `timm.models`), built without weights, and each pool: build, forward, backward, "
        "`forward_head(pre_logits=True)`, `reset_classifier(10)` keeping the pool, `attention_maps`, "
        "and two SGD steps. `simpool.list_families()` names the families that work; the others raise a "
        "`ValueError` with the reason (`simpool.models.families.UNSUPPORTED`). Families are modules of "
        "`timm.models`: ResNet, ConvNeXt and ViT/DeiT keep the official wiring, the others get the generic "
        "one (`simpool/models/generic.py`).",
        "",
        f"**{sum(r.ok for r in results)} of {len(results)} families work ({100 * share:.1f}%).**",
        "",
        "| family | model | timm kwargs | px | " + " | ".join(pools) + " | reason when it fails |",
        "|---|---|---|---|" + "---|" * len(pools) + "---|",
    ]
    for r in results:
        marks = " | ".join("ok" if r.outcome.get(p) == "ok" else "fails" for p in pools)
        reasons = sorted({o for o in r.outcome.values() if o != "ok"})
        if r.family in UNSUPPORTED and reasons:  # our ValueError, raised before building
            reasons = [f"unsupported: {UNSUPPORTED[r.family]}"]
        reason = "; ".join(reasons).replace("|", "\\|")
        kwargs = ", ".join(f"{k}={v}" for k, v in r.kwargs.items())
        lines.append(f"| {r.family} | `{r.model}` | {kwargs} | {r.image_size} | {marks} | {reason} |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return share


ROW = re.compile(r"^\| (\S+) \| `(\S+)` \| (.*?) \| (\d+) \| (.*) \|$")


def read_table(path: Path, pools=POOLS) -> list[Result]:
    """The rows of a table written by :func:`write_table`, for ``--update``."""
    results = []
    for line in path.read_text().splitlines() if path.exists() else []:
        match = ROW.match(line)
        if match is None:
            continue
        family, model, kwargs, size, rest = match.groups()
        cells = [c.strip() for c in rest.split(" | ")]
        marks, reason = cells[: len(pools)], " | ".join(cells[len(pools) :])
        outcome = {p: "ok" if m == "ok" else (reason or "fails") for p, m in zip(pools, marks, strict=True)}
        shrink = dict(item.split("=") for item in kwargs.split(", ")) if kwargs else {}
        results.append(Result(family, model, outcome, {k: int(v) for k, v in shrink.items()}, int(size)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="*", help="only these families (default: all)")
    parser.add_argument("--models", nargs="*", help="these models instead of one per family")
    parser.add_argument("--pools", nargs="*", default=list(POOLS))
    parser.add_argument("--timeout", type=int, default=180, help="seconds per model and pool")
    parser.add_argument("--update", action="store_true", help="rerun the given families in the existing table")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: models are tiny at 64 px)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "families.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    by_family = families()
    if args.models:
        todo = [(short_name(timm.models.model_entrypoint(n).__module__), n) for n in args.models]
    else:
        chosen = args.families or list(by_family)
        todo = [(family, smallest_variant(by_family[family])) for family in chosen]
    kept = [r for r in read_table(args.out, args.pools) if r.family not in {f for f, _ in todo}] if args.update else []
    results = []
    for family, name in todo:
        result = sweep_model(family, name, args.pools, args.timeout)
        results.append(result)
        status = "ok" if result.ok else "; ".join(o for o in result.outcome.values() if o != "ok")
        print(f"{family:28s} {name:40s} {result.seconds:6.1f}s  {status}", flush=True)
        write_table(sorted(kept + results, key=lambda r: r.family), args.out, args.pools)  # readable early
    results = sorted(kept + results, key=lambda r: r.family)
    share = write_table(results, args.out, args.pools)
    print(f"{sum(r.ok for r in results)}/{len(results)} families work ({100 * share:.1f}%) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
