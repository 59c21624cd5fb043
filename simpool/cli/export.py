"""``simpool export``: a model with its weights (and its attention map) as ONNX or a ``torch.export`` program."""

from __future__ import annotations

import argparse
import json

import torch

from ..models.export import FORMATS, export_model
from ..models.families import family_of_name
from ..models.loading import load_model
from ..utils import parse_kv
from .common import add_img_size, add_model, add_out, check_writable

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
    add_img_size(parser, default=None, help="input side in pixels of the exported graph; unset: the model's")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset; unset: the exporter's default")


def run(args: argparse.Namespace) -> int:
    check_writable(args.out)
    model_kwargs = parse_kv(args.model_kwargs)
    if args.img_size is not None and family_of_name(args.model).patch_layout:
        model_kwargs.setdefault("img_size", args.img_size)  # a ViT's position embedding is built for its size
    model = load_model(
        args.model,
        pool=args.pool,
        pool_kwargs=parse_kv(args.pool_kwargs),
        model_kwargs=model_kwargs,
        checkpoint=args.checkpoint,
        checkpoint_key=args.checkpoint_key,
        num_classes=args.num_classes,
    ).eval()
    example_input = None
    if args.img_size is not None:
        example_input = torch.randn(2, 3, args.img_size, args.img_size)
    summary = export_model(
        model, args.out, args.format, attention=args.attention, example_input=example_input, opset=args.opset
    )
    print(json.dumps(summary, indent=2))
    return 0
