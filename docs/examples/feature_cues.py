"""What a frozen bench ViT's features tell apart: the object's class or the background's photo (docs/RESULTS.md,
"Which probing head finds the object?").

On the bench's `mixed_rand` images the background is a crop of one of its 20 photos (`BACKGROUNDS`), drawn
independently of the object's class, so one set of features can be asked two questions with DINO's weighted k-NN
(k = 20, T = 0.07): which of the 10 classes (chance 10%), and which of the 20 photos (chance 5%). On `only_fg` (the
object on black) the class is asked with no background at all. The memory bank is the first `--num-images` of the
bench's `val` split, the queries as many of its `test` split: the photos repeat, their crops do not.

Each backbone is asked through its CLS token (timm's own pooling, `pre_logits`) and through the mean of its patch
tokens; `--random N` adds N randomly initialised backbones (seeds 0..N-1) as the floor. Each top-1 comes with a 95%
bootstrap interval over the query images (1,000 resamples, seed 0): it covers the choice of images, not of training
seeds.

Usage:
    python docs/examples/feature_cues.py --model vit_tiny_patch16_224 \
        --model-kwargs img_size=64 patch_size=8 embed_dim=96 depth=4 num_heads=3 \
        --backbone NAME=CHECKPOINT [--backbone ...] --random 3 --out cues.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe_study import backbone  # noqa: E402  (NAME=CHECKPOINT, as the probing study takes it)
from record import record_head, write_record  # noqa: E402

import simpool  # noqa: E402
from simpool.data.bench import BACKGROUNDS, NUM_CLASSES, BenchConfig, SimPoolBench, normalize_images  # noqa: E402
from simpool.evaluate.knn import knn_predict  # noqa: E402
from simpool.models.loading import load_model  # noqa: E402
from simpool.utils import parse_kv  # noqa: E402

K, TEMPERATURE, RESAMPLES = 20, 0.07, 1000
QUESTIONS = {  # name: (variant, label) asked of the features
    "class_mixed_rand": ("mixed_rand", "class"),
    "photo_mixed_rand": ("mixed_rand", "photo"),
    "class_only_fg": ("only_fg", "class"),
}


def bench_images(split: str, variant: str, num_images: int, config: BenchConfig) -> dict[str, torch.Tensor]:
    """``{"images": uint8 (N, 3, S, S), "class": (N,), "photo": (N,)}``; ``photo`` is the index of the background
    photo of ``mixed_rand`` (``bg_rand``)."""
    bench = SimPoolBench(split, variant, config, num_images=num_images)
    images, labels, _, _ = bench.batch(np.arange(num_images))  # (N, 3, S, S) uint8
    photo = torch.from_numpy(bench.params["bg_rand"][:num_images]).long()  # (N,)
    return {"images": images, "class": labels.long(), "photo": photo}


@torch.no_grad()
def features(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 250) -> dict[str, torch.Tensor]:
    """``{"cls": (N, D), "patch_mean": (N, D)}``: the pooled CLS token and the mean of the patch tokens."""
    cls, mean = [], []
    for start in range(0, len(images), batch_size):
        batch = normalize_images(images[start : start + batch_size])  # (B, 3, S, S) float, ImageNet-normalised
        tokens = model.forward_features(batch)  # (B, 1 + N, D)
        cls.append(model.forward_head(tokens, pre_logits=True))  # (B, D)
        mean.append(tokens[:, model.num_prefix_tokens :].mean(1))  # (B, N, D) -> (B, D)
    return {"cls": torch.cat(cls), "patch_mean": torch.cat(mean)}


def knn_hits(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per query, 1 where DINO's weighted k-NN (the library's :func:`~simpool.evaluate.knn.knn_predict`) names its
    label, else 0: ``(N_query,)``, so that the bootstrap can resample the queries."""
    num_classes = int(max(bank_labels.max(), labels.max())) + 1
    predicted = knn_predict(bank, bank_labels, query, K, TEMPERATURE, num_classes)  # (N_query,)
    return (predicted == labels).double().numpy()


def top1_interval(hits: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, float]:
    """Top-1 in percent and its 95% percentile bootstrap interval over the queries."""
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), (resamples, len(hits)))].mean(1) * 100  # (resamples,)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"top1": float(hits.mean() * 100), "low": float(low), "high": float(high)}


def ask(model: torch.nn.Module, data: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """Each question of ``QUESTIONS`` asked of ``model``'s CLS token and patch mean: ``{feature: {question: top1}}``."""
    feats = {
        variant: {part: features(model, data[variant][part]["images"]) for part in parts}
        for variant, parts in data.items()
    }
    out: dict[str, dict[str, dict]] = {}
    for name in ("cls", "patch_mean"):
        for question, (variant, label) in QUESTIONS.items():
            bank, query = data[variant]["bank"], data[variant]["query"]
            hits = knn_hits(feats[variant]["bank"][name], bank[label], feats[variant]["query"][name], query[label])
            out.setdefault(name, {})[question] = top1_interval(hits)
    return out


def models(args: argparse.Namespace, kwargs: dict):
    """``(name, seed or checkpoint, model)`` of every ``--random`` seed, then every ``--backbone``."""
    for seed in range(args.random):
        torch.manual_seed(seed)
        yield "random", seed, simpool.create_model(args.model, pool="default", num_classes=0, **kwargs).eval()
    for name, checkpoint in args.backbone:
        yield name, checkpoint, load_model(args.model, pool="default", model_kwargs=kwargs, checkpoint=checkpoint)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="timm model name of every backbone")
    parser.add_argument("--model-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="timm arguments")
    parser.add_argument("--backbone", type=backbone, action="append", default=[], help="NAME=CHECKPOINT")
    parser.add_argument("--random", type=int, default=0, help="randomly initialised backbones (seeds 0..N-1)")
    parser.add_argument("--num-images", type=int, default=2000, help="bank (val) and query (test) images each")
    parser.add_argument("--bench-seed", type=int, default=1, help="the bench's seed (the probing study's data: 1)")
    parser.add_argument("--out", type=Path, required=True, help="the kept JSON")
    args = parser.parse_args(argv)
    if not args.backbone and args.random < 1:
        parser.error("give --backbone NAME=CHECKPOINT or --random N")
    if args.num_images < K:
        parser.error(f"--num-images must be at least k = {K} (the bank's size), got {args.num_images}")
    missing = [checkpoint for _, checkpoint in args.backbone if not Path(checkpoint).is_file()]
    if missing:
        parser.error(f"--backbone: no such checkpoint file: {', '.join(missing)}")
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as error:  # a checkpoint that does not fit, no Fashion-MNIST: one line
        parser.error(str(error))


def run(args: argparse.Namespace) -> int:
    """Ask every backbone every question and write the record."""
    head = record_head()
    kwargs = parse_kv(args.model_kwargs)
    config = BenchConfig(image_size=int(kwargs.get("img_size", 64)), seed=args.bench_seed)
    variants = sorted({variant for variant, _ in QUESTIONS.values()})
    data = {
        variant: {
            "bank": bench_images("val", variant, args.num_images, config),
            "query": bench_images("test", variant, args.num_images, config),
        }
        for variant in variants
    }
    rows = []
    for name, source, model in tqdm(list(models(args, kwargs)), desc="backbones", unit="backbone"):
        key = "seed" if name == "random" else "checkpoint"
        rows.append({"name": name, key: source, **ask(model, data)})
    results = {
        "bench": {"seed": args.bench_seed, "image_size": config.image_size, "num_images": args.num_images},
        "k": K,
        "temperature": TEMPERATURE,
        "chance": {"class": 100.0 / NUM_CLASSES, "photo": 100.0 / len(BACKGROUNDS)},
        "backbones": rows,
    }
    write_record(args.out, head, results)
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
