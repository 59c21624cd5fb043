"""``simpool probe``: attentive probing of a frozen backbone, every head x learning rate in one pass
(:class:`simpool.train.probe.run.ProbeRecipe`)."""

from __future__ import annotations

import argparse
import os
import re

from ..pooling import list_aliases
from ..utils import parse_kv
from .common import add_data, add_img_size, add_model, add_out, add_runtime, check_writable, resolve_pool
from .recipe import add_overrides, resolve_config, run_recipe

EXAMPLE = """examples:
  simpool probe --model vit_small_patch16_224 --checkpoint backbone.safetensors --data /data/imagenet \\
      --heads linear simpool ep map abmilp --lr 1e-3 3e-3 1e-2 --epochs 90 --out runs/probe
  simpool probe --model vit_small_patch16_224 --checkpoint mae.safetensors --data /data/imagenet \\
      --heads linear ep --opt lars --batch-size 4096 --cache --out runs/probe_lars     # efficient-probing's protocol
  simpool probe --model vit_small_patch16_224 --data /data/imagenet --out runs/probe \\
      probe.attention_images=200 train.max_updates=10 data.auto_augment=rand-m9-mstd0.5-inc1   # any config field
  simpool probe --model vit_small_patch16_224 --data bench/dataset --test-split test in9 --heads linear ep ep_all \\
      --lr 1e-3 1e-2 --weight-decay 0 0.05 --head-kwargs ep.num_queries=8,16 --blocks last4 --blocks-mode avg \\
      --shots 1 5 --tries 3 --out runs/probe_grid     # a grid over everything, the IN-9 variants, few-shot
  torchrun --nproc_per_node=8 -m simpool.cli probe --model vit_base_patch16_224 --data /data/imagenet ...
--data holds the training split and the test split as ImageFolder layouts (class folders). The best head x lr is
chosen on a held-out part of the training split (--holdout), per head, over every lr x weight decay x option;
then the top-1/top-5 on every test set, the BG-gap with the IN-9 variants, and a k-NN row. Heads:
'linear' (CLS token, or GAP) or any pool name of `simpool landscape`. The run folder (--out) holds
results.json, probe.png (accuracy vs GFLOPs) and, where the test split has boxes (a `simpool bench export
--format wsol` folder: --data OUT/dataset), each head's attention scores (MaxBoxAccV2; PxAP and mask mass with
masks) beside the image-independent baselines (uniform, centre, box prior, each head's mean map), attention.png
and attention_maps.npz. Running the same command again resumes an interrupted run."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data(parser, help="ImageFolder root holding the training split and the test split")
    parser.add_argument("--train-split", default="train", help="training sub-folder of --data (held-out part cut)")
    parser.add_argument(
        "--test-split",
        nargs="+",
        default=["val"],
        metavar="SPLIT",
        help="test sub-folders of --data (the bench exports 'test'); the first's boxes are scored; an IN-9 export "
        "folder (`simpool bench export --format in9 --variant all`) adds each variant, and the BG-gap",
    )
    parser.add_argument(
        "--heads",
        nargs="+",
        default=["linear", "simpool"],
        help="'linear' or pool names (simpool.list_pools(aliases=True)), efficient-probing's names included: "
        "esimpool, dinovit, cait, and as aliases "
        + ", ".join(f"{alias} (= {pool})" for alias, pool in list_aliases().items())
        + " (cbam and clip are the papers' heads); a pool's name with _all (simpool_all): it also sees the CLS token",
    )
    parser.add_argument(
        "--lr", nargs="+", default=None, metavar="LR", help="base learning rates (x batch/256); unset: 1e-3, LARS 0.1"
    )
    parser.add_argument("--opt", default="adamw", choices=("adamw", "lars", "sgd"), help="optimizer of every head")
    parser.add_argument(
        "--weight-decay", nargs="+", default=["0"], metavar="WD", help="weight decays: each head trains at each"
    )
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument(
        "--blocks",
        nargs="+",
        default=["1"],
        metavar="B",
        help="the blocks that feed the heads: N or lastN (the last N), or several indices (3 7 11, -1 the last)",
    )
    parser.add_argument(
        "--blocks-mode",
        default="mean",
        choices=("mean", "concat", "avg"),
        help="how the blocks combine: mean after the final norm, concat, avg (AIM: the final norm of the mean)",
    )
    parser.add_argument("--with-cls", action="store_true", help="the pools also see the CLS (prefix) tokens")
    parser.add_argument("--holdout", type=float, default=0.1, help="share of the training split held out")
    parser.add_argument(
        "--shots", nargs="+", default=[], metavar="K", help="few-shot: also train on K images per class, for each K"
    )
    parser.add_argument("--tries", type=int, default=1, help="seeded few-shot subsets per K (mean +- std)")
    parser.add_argument("--cache", action="store_true", help="no augmentation: backbone tokens kept in a memmap")
    parser.add_argument("--metadata", default=None, help="wsolevaluation folder of the test split's boxes")
    parser.add_argument(
        "--head-kwargs",
        nargs="*",
        default=[],
        metavar="HEAD.KEY=VALUE",
        help="a head's pool arguments: aim.num_heads=6; values split by commas are a grid: ep.num_queries=8,16,32",
    )
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16", "auto"), help="mixed precision")
    add_img_size(parser)
    add_model(parser, pool="default")
    add_runtime(parser, batch_size=256)
    add_out(parser, default="runs/probe", help="run folder (results.json, figures, last.pt)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if the run folder has last.pt")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_overrides(parser, example="probe.attention_images=200 train.max_updates=10")


def parse_numbers(values: list[str] | None, option: str = "--lr") -> list[float]:
    """``option``'s words as floats; a word that is not a number is one line naming it."""
    numbers = []
    for value in values or []:
        try:
            numbers.append(float(value))
        except ValueError:
            raise ValueError(f"{option} {value!r} is not a number") from None
    return numbers


def parse_blocks(words: list[str]) -> dict:
    """``--blocks``: ``N`` or ``lastN`` (``{"blocks": N}``), or several indices (``{"block_indices": [...]}``)."""
    if len(words) == 1 and re.fullmatch(r"(last)?\d+", words[0]):
        return {"blocks": int(words[0].removeprefix("last"))}
    try:
        return {"block_indices": [int(word) for word in words]}
    except ValueError:
        raise ValueError(f"--blocks {' '.join(words)}: give N or lastN (the last N blocks) or block indices") from None


def parse_shots(values: list[str]) -> list[int]:
    """``--shots`` words as positive integers; any other word is one line naming it."""
    shots = []
    for value in values:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"--shots {value!r} is not a positive integer (images per class)")
        shots.append(int(value))
    return shots


def parse_head_kwargs(items: list[str]) -> dict[str, dict]:
    """``["aim.num_heads=6", "ep.num_queries=8,16"]`` -> ``{"aim": {"num_heads": 6}, "ep": {"num_queries": [8, 16]}}``:
    values split by commas (outside brackets) are a list, which the grid varies."""
    nested: dict[str, dict] = {}
    for item in items:
        head, dot, rest = item.partition(".")
        if not dot or "=" not in rest:
            raise ValueError(f"--head-kwargs {item!r} is not of the form HEAD.KEY=VALUE (e.g. aim.num_heads=6)")
        key, _, value = rest.partition("=")
        if "," in value and not value.strip().startswith(("[", "{")):
            values = [parse_kv([f"v={word}"])["v"] for word in value.split(",")]
            nested.setdefault(head, {})[key.strip()] = values
        else:
            nested.setdefault(head, {}).update(parse_kv([rest]))
    return nested


# options that take several words
LIST_OPTIONS = (
    "heads",
    "lr",
    "weight_decay",
    "test_split",
    "shots",
    "blocks",
    "head_kwargs",
    "pool_kwargs",
    "model_kwargs",
)
SECTIONS = ("model", "data", "train", "probe")  # ProbeConfig's sections
OVERRIDE = re.compile(rf"^({'|'.join(SECTIONS)})\.[^=]+=")  # a word `section.key=value`


def take_back_overrides(args: argparse.Namespace) -> None:
    """Overrides written right after a list option (``--heads linear simpool train.epochs=1``) are taken by it,
    argparse being greedy: move them back to the overrides (no head, lr or pool argument looks like one)."""
    moved = []
    for name in LIST_OPTIONS:
        words = getattr(args, name)
        if words:
            moved += [word for word in words if OVERRIDE.match(word)]
            setattr(args, name, [word for word in words if not OVERRIDE.match(word)])
    args.overrides = moved + list(args.overrides)


def flags_of(args: argparse.Namespace) -> dict:
    """The config values the options set (the ``key=value`` overrides come on top)."""
    out = os.path.abspath(args.out)
    return {
        "model": {
            "name": args.model,
            "pool": resolve_pool(args.pool, args.checkpoint),
            "pool_kwargs": parse_kv(args.pool_kwargs),
            "kwargs": parse_kv(args.model_kwargs),
            "checkpoint": args.checkpoint or "",
            "checkpoint_key": args.checkpoint_key,
        },
        "data": {
            "root": args.data,
            "train_split": args.train_split,
            "val_split": args.test_split[0],
            "img_size": args.img_size,
            "num_workers": args.workers,
        },
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "amp": args.amp,
            "device": args.device or "auto",
            "seed": args.seed,
            "output": os.path.dirname(out),
            "name": os.path.basename(out),
            "progress": not args.no_progress,
        },
        "probe": {
            "heads": list(args.heads),
            "lrs": parse_numbers(args.lr),
            "opt": args.opt,
            "weight_decays": parse_numbers(args.weight_decay, "--weight-decay"),
            "test_splits": list(args.test_split[1:]),
            "shots": parse_shots(args.shots),
            "tries": args.tries,
            **parse_blocks(args.blocks),
            "blocks_mode": args.blocks_mode,
            "with_cls": args.with_cls,
            "holdout": args.holdout,
            "cache": args.cache,
            "metadata": args.metadata or "",
            "head_kwargs": parse_head_kwargs(args.head_kwargs),
        },
    }


def run(args: argparse.Namespace) -> int:
    from ..train.probe.config import ProbeConfig

    take_back_overrides(args)
    config = resolve_config(args, ProbeConfig, base=flags_of(args))
    check_writable(args.out)
    from ..train.probe.fewshot import few_shot_table
    from ..train.probe.report import attention_lines, baselines_table, heads_table, selection_line
    from ..train.probe.run import ProbeRecipe

    result = run_recipe(args, config, ProbeRecipe)  # every mistake of the grid: one line, exit 2, before any work
    if not result or "heads" not in result:  # --print-config, or not the main process
        return 0
    print(heads_table(result))
    print(selection_line(result))
    if "few_shot" in result:
        print(few_shot_table(result["few_shot"]))
    if "baselines" in result:
        print(baselines_table(result))
        print("\n".join(attention_lines(result)))
    if not result["finished"]:
        print("note: the run stopped before its last epoch (train.max_updates); run again to finish it")
    return 0
