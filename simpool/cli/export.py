"""``simpool export``: a model with its weights (and its attention map) as ONNX or a ``torch.export`` program."""

from __future__ import annotations

import argparse
import json

import torch

from ..models.export import FORMATS, check_export_target, export_model
from ..models.families import family_of_name
from ..models.loading import load_model
from ..utils import parse_kv
from .common import add_img_size, add_model, add_out, check_writable, resolve_pool

EXAMPLE = """example:
  simpool export --model vit_small_patch16_224 --pool simpool --checkpoint model.safetensors \\
      --format onnx --out model.onnx --attention
  simpool export --model resnet50 --pool simpool --checkpoint resnet50.safetensors --format pt2 --out r50.pt2"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model(parser)
    parser.add_argument(
        "--format", default="onnx", choices=FORMATS, help="onnx: run with onnxruntime; pt2: torch.export"
    )
    add_out(parser, required=True, help="file to write (.onnx or .pt2)")
    parser.add_argument(
        "--attention", action="store_true", help="a second output, 'attention' (B, h, w), beside 'logits'"
    )
    add_img_size(
        parser,
        default=None,
        help="input side in pixels, fixed in the exported graph (the batch size is not); unset: img_size of "
        "--model-kwargs, else the model's",
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (13 or newer); unset: the exporter's (18)")


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, kind="file")
    check_export_target(args.out, args.format, args.opset)
    model_kwargs = parse_kv(args.model_kwargs)
    img_size = args.img_size if args.img_size is not None else model_kwargs.get("img_size")
    if img_size is not None and family_of_name(args.model).patch_layout:
        model_kwargs.setdefault("img_size", img_size)  # a ViT's position embedding is built for its size
    model = load_model(
        args.model,
        pool=resolve_pool(args.pool, args.checkpoint),
        pool_kwargs=parse_kv(args.pool_kwargs),
        model_kwargs=model_kwargs,
        checkpoint=args.checkpoint,
        checkpoint_key=args.checkpoint_key,
        num_classes=args.num_classes,
    ).eval()
    example_input = None  # unset: the size the model was built for (its img_size, or timm's default)
    if img_size is not None:
        side = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        example_input = torch.randn(2, 3, *side)
    summary = export_model(
        model, args.out, args.format, attention=args.attention, example_input=example_input, opset=args.opset
    )
    print(json.dumps(summary, indent=2))
    return 0
