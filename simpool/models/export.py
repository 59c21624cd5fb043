"""``export_model``: a model, with its attention map as a second output, as ONNX or a ``torch.export`` program.

A deployed SimPool classifier also shows where it looked: with ``attention=True`` the exported graph has
two named outputs, ``logits`` ``(B, num_classes)`` and ``attention`` ``(B, h, w)``, the same map as
:func:`simpool.attention_maps` (the pool's attention, or the CLS token's for a ViT with timm's own
pooling), computed in the same forward pass as the logits. The batch size is dynamic; the spatial size is
fixed: the graph takes images of the size it was exported for only.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .factory import input_size_of, pool_slot

FORMATS = ("onnx", "pt2")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2"}  # the file suffix of each format
MIN_OPSET = 13  # the oldest opset torch's dynamo exporter converts its graphs (opset 18) down to
INPUT_NAME = "images"


def max_opset() -> int:
    """The newest ONNX opset the installed ``onnx`` package knows."""
    import onnx

    return onnx.defs.onnx_opset_version()


def check_export_target(path: str | os.PathLike, format: str, opset: int | None = None) -> None:
    """Refuse before any work an unknown format, a file suffix that is not the format's, or an opset outside
    ``[MIN_OPSET, max_opset()]`` (or any opset for ``pt2``).

    Raises:
        ValueError: one line naming the bad input and what is valid.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid formats: {', '.join(FORMATS)}")
    suffix = Path(path).suffix
    if suffix != SUFFIXES[format]:
        raise ValueError(
            f"{path}: the {format} format writes a {SUFFIXES[format]} file, not {suffix or 'one without a suffix'}"
        )
    if opset is not None and format != "onnx":
        raise ValueError(f"an opset is an ONNX setting; format {format!r} takes none")
    if opset is not None and not MIN_OPSET <= opset <= max_opset():
        raise ValueError(f"opset {opset} is outside [{MIN_OPSET}, {max_opset()}], the opsets the ONNX exporter writes")


class AttentionOutputs(nn.Module):
    """``images -> (logits, attention)`` in one forward pass: the model and its attention map ``(B, h, w)``.

    ``source`` is ``"pool"`` (the simpool pool's attention, averaged over heads or vectors) or ``"cls"``
    (the CLS token's attention to the patches in the last block, averaged over heads), as in
    :func:`simpool.attention_maps`.
    """

    def __init__(self, model: nn.Module, source: str):
        super().__init__()
        self.model, self.source = model, source

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = images.shape[0]  # batch
        if self.source == "pool":
            slot = pool_slot(self.model)
            slot.record_attention = True
            try:
                logits = self.model(images)
                attention = slot.attention  # (B, [M,] H, W) for a map, (B, [M,] N) for tokens
            finally:
                slot.record_attention, slot.attention = False, None
            h, w = self._grid(images, attention)
            return logits, attention.reshape(B, -1, h, w).mean(dim=1)  # over heads or vectors: (B, h, w)
        captured = {}
        attn = self.model.blocks[-1].attn
        handle = attn.register_forward_pre_hook(lambda module, args: captured.setdefault("x", args[0]))
        try:
            logits = self.model(images)
        finally:
            handle.remove()
        x = captured["x"]  # the last block's normalised input: (B, T, C), T = prefix + N
        T = x.shape[1]  # tokens
        qkv = attn.qkv(x).reshape(B, T, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, heads, T, D)
        q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])  # (B, heads, T, D)
        weights = ((q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # CLS row: (B, heads, 1, T)
        cls = weights[:, :, 0, self.model.num_prefix_tokens :].mean(dim=1)  # to the patches: (B, N)
        h, w = self._grid(images, cls)
        return logits, cls.reshape(B, h, w)  # (B, h, w)

    def _grid(self, images: torch.Tensor, attention: torch.Tensor) -> tuple[int, int]:
        if hasattr(self.model, "patch_embed"):
            return tuple(self.model.patch_embed.dynamic_feat_size(tuple(images.shape[-2:])))
        return tuple(attention.shape[-2:])  # a CNN's map


def attention_source(model: nn.Module) -> str:
    """``"pool"`` for a simpool pool, ``"cls"`` for a ViT with its CLS token; else a ``ValueError``."""
    if pool_slot(model) is not None:
        return "pool"
    if getattr(model, "has_class_token", False) and hasattr(model, "blocks"):
        return "cls"
    raise ValueError(
        f"{type(model).__name__} has timm's own pooling, which has no attention map: export it with "
        "attention=False (--attention left out), or build it with a simpool pool"
    )


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    attention: bool = True,
    example_input: torch.Tensor | None = None,
    opset: int | None = None,
) -> dict:
    """Export ``model`` (in eval mode, on the CPU) to ``path`` with a dynamic batch size.

    Args:
        model: a model from ``create_model`` (any pool) or a timm ViT with its CLS token.
        path: the file to write (``.onnx`` or ``.pt2``: the format's suffix).
        format: ``"onnx"`` (torch's dynamo-based exporter, ``torch.onnx.export(dynamo=True)``; run it with
            onnxruntime) or ``"pt2"`` (a ``torch.export`` program: ``torch.export.load(path).module()``).
        attention: outputs ``logits`` and ``attention`` ``(B, h, w)``; else ``logits`` only.
        example_input: images ``(B, 3, H, W)`` of the size the graph is for; by default two of the size the
            model was built for (:func:`input_size_of`). Its batch size is not fixed in the graph; its spatial
            size is: the graph takes images of that size only.
        opset: ONNX opset version in ``[MIN_OPSET, max_opset()]``; None: the exporter's default (18). The one
            written is returned.

    Returns:
        ``{"path", "format", "outputs", "input_shape", "opset"}`` (``opset`` None for ``pt2``).

    Raises:
        ValueError: an unknown format, a suffix not the format's, an opset outside the range,
            ``attention=True`` for a model whose pooling has no attention map, or an input the model cannot
            take (each named in one line).
    """
    check_export_target(path, format, opset)
    model = model.eval().cpu()
    wrapped = AttentionOutputs(model, attention_source(model)).eval() if attention else model
    if example_input is None:
        example_input = torch.randn(2, *input_size_of(model))
    example_input = example_input.detach().cpu()
    if example_input.shape[0] < 2:  # an example of one would fix the batch size at 1
        example_input = example_input.expand(2, *example_input.shape[1:]).clone()
    try:
        with torch.no_grad():
            wrapped(example_input)
    except (AssertionError, RuntimeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"{type(model).__name__} cannot take input of shape {tuple(example_input.shape)}: {reason}"
        ) from error
    outputs = ["logits", "attention"] if attention else ["logits"]
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic_shapes = {INPUT_NAME if attention else _first_argument(model): {0: batch}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opset_written = None
    if format == "pt2":
        with torch.no_grad():
            program = torch.export.export(wrapped, (example_input,), dynamic_shapes=dynamic_shapes)
        torch.export.save(program, str(path))
    else:
        program = torch.onnx.export(
            wrapped,
            (example_input,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=outputs,
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            verbose=False,
        )
        opset_written = next(o.version for o in program.model_proto.opset_import if o.domain in ("", "ai.onnx"))
        if opset is not None and opset_written != opset:  # the exporter's down-conversion failed for this graph
            raise ValueError(f"the ONNX exporter could not write this model at opset {opset}; try 18 or newer")
        program.save(str(path))
    return {
        "path": str(path),
        "format": format,
        "outputs": outputs,
        "input_shape": [None, *example_input.shape[1:]],
        "opset": opset_written,
    }


def _first_argument(model: nn.Module) -> str:
    """The name of ``model.forward``'s first argument (timm's are ``x``), for ``dynamic_shapes``."""
    import inspect

    return next(iter(inspect.signature(model.forward).parameters))
