"""Our probing heads against efficient-probing's own modules: the same weights, the same inputs, the same output?

Run: ``python benchmarks/probe_heads_parity.py --reference /path/to/efficient-probing [--extra-path DIR] [--out FILE]``.

For each of the 14 heads of efficient-probing's ``probe_heads.py`` (``siglip`` is our ``map``; ``cbam`` is ours
with the arguments of its reference), the script builds the reference module
(imported from the given checkout at run time; nothing of it is copied here), fills every parameter and
buffer with random values (many are zero-initialised), loads its state dict into our pool through
``load_reference_state_dict`` and prints the largest absolute difference of the outputs on the same random
tokens, in float32 and in float64 (rounding shrinks with the precision; a real difference does not).
``coca_pytorch`` imports ``einops``: put it on ``--extra-path`` (e.g. ``pip install --target DIR einops``)
rather than into this environment.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Callable

import torch
from record import git_commit, record_head, write_record
from torch import nn

from simpool.pooling import create_pool

DIM, HEADS, GRID, BATCH = 768, 12, 14, 4  # ViT-B/16 at 224 px: 196 tokens of 768 channels


def _randomize(module: nn.Module, seed: int) -> None:
    """Every parameter random: weights ~ N(0, 1/fan_in), vectors ~ N(0, 0.2^2) (norm scales 1 + that), BatchNorm
    statistics plausible; the outputs stay of order 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            std = 0.2 if p.ndim == 1 else (1 if name.endswith(("token", "tokens", "queries", "latent")) else 0)
            std = std or p[0].numel() ** -0.5  # a weight: 1/sqrt(fan_in)
            noise = torch.randn(p.shape, generator=generator, dtype=p.dtype) * std
            is_scale = p.ndim == 1 and any(part in name for part in ("norm", "gamma", "bn"))
            p.copy_(1 + noise if is_scale and name.endswith(("weight", "gamma")) else noise)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=generator) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=generator))


def _reference(module: str, name: str) -> Callable[..., nn.Module]:
    return getattr(importlib.import_module(module), name)


# head -> (reference builder, our pool's keyword arguments, reference call on tokens)
CASES: dict[str, tuple[Callable[[], nn.Module], dict, Callable]] = {
    "ep": (
        lambda: _reference("poolings.ep", "EfficientProbing")(dim=DIM, num_queries=32, d_out=1),
        dict(num_queries=32),
        lambda ref, x: ref(x),
    ),
    "ep (d_out=2)": (
        lambda: _reference("poolings.ep", "EfficientProbing")(dim=DIM, num_queries=32, d_out=2),
        dict(num_queries=32, d_out=2),
        lambda ref, x: ref(x),
    ),
    "aim": (
        lambda: _reference("poolings.aim", "AttentionPoolingClassifier")(dim=DIM, num_heads=HEADS),
        dict(num_heads=HEADS),
        lambda ref, x: ref(x),
    ),
    "abmilp": (
        lambda: _reference("poolings.abmilp", "ABMILPHead")(dim=DIM),
        {},
        lambda ref, x: ref(x),
    ),
    "coca": (
        lambda: _reference("poolings.coca_pytorch", "CrossAttention")(dim=DIM),
        {},
        lambda ref, x: ref(x),
    ),
    "cae": (
        lambda: _reference("poolings.cae_att", "CAEAttentiveBlock")(dim=DIM),
        {},
        lambda ref, x: ref(x),
    ),
    "jepa": (
        lambda: _reference("poolings.jepa.attentive_pooler", "AttentivePooler")(embed_dim=DIM, num_heads=HEADS),
        dict(num_heads=HEADS),
        lambda ref, x: ref(x),
    ),
    "jepa (depth=2)": (
        lambda: _reference("poolings.jepa.attentive_pooler", "AttentivePooler")(
            embed_dim=DIM, num_heads=HEADS, depth=2
        ),
        dict(num_heads=HEADS, depth=2),
        lambda ref, x: ref(x),
    ),
    "dolg": (
        lambda: _reference("poolings.dolg.dolg", "SpatialAttention2d")(in_c=DIM, s3_dim=DIM, with_aspp=False),
        {},
        lambda ref, x: ref(x),
    ),
    "siglip": (  # an alias: our map with norm=False
        lambda: _reference("poolings.clip.attention_pool", "AttentionPoolLatent")(in_features=DIM),
        {},
        lambda ref, x: ref(x),
    ),
    "clip": (
        lambda: _reference("poolings.clip.attention_pool2d", "AttentionPool2d")(in_features=DIM, feat_size=GRID),
        dict(feat_size=GRID, num_heads=4, norm=True),
        lambda ref, x: ref(x),
    ),
    "simpool": (
        lambda: _on_cpu(lambda: _reference("poolings.simpool", "SimPool")(dim=DIM, num_heads=1, gamma=None)),
        {},
        lambda ref, x: ref(x),
    ),
    "esimpool": (
        lambda: _on_cpu(lambda: _reference("poolings.simpool", "SimPool_nolinears")(dim=DIM, num_heads=12)),
        {},
        lambda ref, x: ref(x),
    ),
    "cbam": (
        lambda: _reference("poolings.cbam", "CbamPooling")(channels=DIM, spatial_kernel_size=7),
        dict(mlp_bias=False, rd_divisor=1, spatial_norm=True, residual=True),
        lambda ref, x: ref(x.clone()),  # the reference adds its residual in place
    ),
    "cait": (
        lambda: _reference("poolings.other_pool", "CAPooling")(embed_dim=DIM),
        {},
        lambda ref, x: ref(x),
    ),
    "dinovit": (
        lambda: _reference("poolings.other_pool", "DinoViTBlockPooling")(d_model=DIM),
        {},
        lambda ref, x: ref(x),
    ),
}


def _on_cpu(build: Callable[[], nn.Module]) -> nn.Module:
    """Build a reference whose constructor puts a constant on ``device='cuda'`` (efficient-probing's SimPool's
    ``eps``, unused without gamma) on a machine without CUDA: such constants go to the CPU instead."""
    original = torch.tensor

    def tensor(*args, **kwargs):
        if kwargs.get("device") == "cuda" and not torch.cuda.is_available():
            kwargs["device"] = "cpu"
        return original(*args, **kwargs)

    torch.tensor = tensor
    try:
        return build()
    finally:
        torch.tensor = original


def compare(head: str, mode: str, dtype: torch.dtype, seed: int = 0) -> tuple[float, float]:
    """Max abs difference of our output and the reference's, and the largest output magnitude."""
    build, kwargs, call = CASES[head]
    torch.manual_seed(seed)
    reference = build()
    _randomize(reference, seed)
    name = head.split(" ")[0]
    ours = create_pool(name, DIM, **kwargs)
    ours.load_reference_state_dict(reference.state_dict())
    reference, ours = reference.to(dtype), ours.to(dtype)
    reference.train(mode == "train")
    ours.train(mode == "train")
    x = torch.randn(BATCH, GRID * GRID, DIM, generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    with torch.no_grad():
        expected, got = call(reference, x), ours(x)
    if got.shape != expected.shape:
        raise AssertionError(f"{head}: shapes differ, ours {tuple(got.shape)} vs {tuple(expected.shape)}")
    return (got - expected).abs().max().item(), expected.abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="a checkout of billpsomas/efficient-probing")
    parser.add_argument("--extra-path", action="append", default=[], help="where einops is (for coca)")
    parser.add_argument("--heads", nargs="+", default=list(CASES), choices=list(CASES), metavar="HEAD")
    parser.add_argument("--out", default=None, help="write every difference as JSON here, with the command and machine")
    args = parser.parse_args()
    head_of_record = record_head()
    sys.path[:0] = [args.reference, *args.extra_path]
    torch.set_num_threads(min(2, torch.get_num_threads()))
    print(f"{DIM} channels, {GRID * GRID} tokens, batch {BATCH}; reference weights random, loaded into ours")
    print("| head | mode | max abs diff float32 | max abs diff float64 | max abs output |")
    print("|---|---|---|---|---|")
    rows = []
    for head in args.heads:
        modes = ("eval", "train") if head in ("aim", "dolg", "cbam") else ("eval",)  # BatchNorm: statistics, batch
        for mode in modes:
            try:
                diff32, scale = compare(head, mode, torch.float32)
                diff64, _ = compare(head, mode, torch.float64)
            except Exception as error:  # an import or a run of the reference failed: say so, keep going
                print(f"| {head} | {mode} | not run: {type(error).__name__}: {error} | | |")
                rows.append({"head": head, "mode": mode, "error": f"{type(error).__name__}: {error}"})
                continue
            print(f"| {head} | {mode} | {diff32:.2e} | {diff64:.2e} | {scale:.3g} |")
            rows.append({"head": head, "mode": mode, "float32": diff32, "float64": diff64, "max_abs_output": scale})
            if not math.isfinite(diff32):
                raise SystemExit(f"{head}: non-finite difference")
    if args.out:
        setting = {"channels": DIM, "tokens": GRID * GRID, "batch": BATCH, "reference": "billpsomas/efficient-probing"}
        setting["reference_commit"] = git_commit(args.reference)
        write_record(args.out, head_of_record, {**setting, "rows": rows})


if __name__ == "__main__":
    main()
