"""export_model and ``simpool export``: ONNX (run by onnxruntime) and torch.export programs with the attention map.

Each export takes tens of seconds on two cores (the dynamo exporter traces and optimises the
whole model), hence ``slow``; the bad requests fail before any export and run always.
"""

from __future__ import annotations

import pytest
import torch

from simpool import attention_maps, create_model
from simpool.cli.main import main
from simpool.models import save_checkpoint
from simpool.models.export import export_model

ort = pytest.importorskip("onnxruntime")

VIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
MODELS = {  # (name, pool, timm kwargs, image side): tiny, a map of at least 2x2 for the CNNs
    "resnet-simpool": ("resnet18", "simpool", dict(layers=(1, 1, 1, 1)), 64),
    "convnext-simpool": ("convnext_atto", "simpool", dict(depths=(1, 1, 1, 1), dims=(16, 32, 64, 128)), 64),
    "vit-simpool": ("vit_tiny_patch16_224", "simpool", VIT, 32),
    "vit-cls": ("vit_tiny_patch16_224", "default", VIT, 32),  # the baseline: CLS attention
}
ONNX_TOLERANCE = dict(atol=1e-4, rtol=1e-4)  # onnxruntime's kernels against PyTorch's, float32


def _model(key: str):
    name, pool, kwargs, side = MODELS[key]
    torch.manual_seed(0)
    return create_model(name, pool=pool, num_classes=3, **kwargs).eval(), side


def _reference(model, images):
    with torch.no_grad():
        return model(images), attention_maps(model, images)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["convnext-simpool", "resnet-simpool", "vit-cls"])  # vit-simpool: the CLI test
def test_onnx_matches_pytorch_with_a_dynamic_batch(key, tmp_path):
    model, side = _model(key)
    summary = export_model(model, tmp_path / "model.onnx", "onnx", example_input=torch.randn(2, 3, side, side))
    assert summary["outputs"] == ["logits", "attention"] and summary["opset"] >= 18
    session = ort.InferenceSession(summary["path"], providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "attention"]
    images = torch.randn(3, 3, side, side)  # another batch size than the example's
    logits, attention = session.run(None, {"images": images.numpy()})
    expected_logits, expected_attention = _reference(model, images)
    assert attention.shape == tuple(expected_attention.shape) and attention.shape[1:] != (1, 1)
    torch.testing.assert_close(torch.from_numpy(logits), expected_logits, **ONNX_TOLERANCE)
    torch.testing.assert_close(torch.from_numpy(attention), expected_attention, **ONNX_TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["resnet-simpool", "vit-cls"])
def test_pt2_program_gives_the_same_numbers_exactly(key, tmp_path):
    model, side = _model(key)
    summary = export_model(model, tmp_path / "model.pt2", "pt2", example_input=torch.randn(2, 3, side, side))
    program = torch.export.load(summary["path"]).module()
    images = torch.randn(5, 3, side, side)
    logits, attention = program(images)
    expected_logits, expected_attention = _reference(model, images)
    torch.testing.assert_close(logits, expected_logits, atol=0, rtol=0)
    torch.testing.assert_close(attention, expected_attention, atol=0, rtol=0)


def test_bad_requests_are_one_line_value_errors(tmp_path):
    vit, side = _model("vit-simpool")
    with pytest.raises(ValueError, match="unknown export format 'tflite'; valid formats: onnx, pt2"):
        export_model(vit, tmp_path / "m", "tflite")
    gap = create_model("resnet18", pool="default", num_classes=3).eval()
    with pytest.raises(ValueError, match="no attention map") as error:
        export_model(gap, tmp_path / "m.onnx", "onnx", example_input=torch.randn(2, 3, 64, 64))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"cannot take input of shape \(2, 3, 48, 48\)") as error:
        export_model(vit, tmp_path / "m.onnx", "onnx", example_input=torch.randn(2, 3, 48, 48))
    assert "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_cli_mistakes_exit_2_with_one_line(tmp_path, capsys):
    code = main(["export", "--model", "resnet18", "--pool", "default", "--format", "onnx"]
                + ["--out", str(tmp_path / "m.onnx"), "--attention", "--img-size", "64"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("simpool export: error:") and "no attention map" in err and "\n" not in err


@pytest.mark.slow
def test_cli_reads_the_number_of_classes_from_the_checkpoint(tmp_path, capsys):
    # also the ONNX check of the ViT with SimPool: the file the CLI wrote against PyTorch, another batch size
    model, side = _model("vit-simpool")  # 3 classes
    save_checkpoint(model.state_dict(), tmp_path / "model.safetensors")
    kwargs = [f"{k}={v}" for k, v in VIT.items() if k != "img_size"]
    checkpoint = str(tmp_path / "model.safetensors")
    code = main(
        ["export", "--model", "vit_tiny_patch16_224", "--pool", "simpool", "--checkpoint", checkpoint]
        + ["--format", "onnx", "--out", str(tmp_path / "model.onnx"), "--attention", "--img-size", str(side)]
        + ["--model-kwargs", *kwargs]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, side, side)
    logits, attention = session.run(["logits", "attention"], {"images": images.numpy()})
    expected_logits, expected_attention = _reference(model, images)
    torch.testing.assert_close(torch.from_numpy(logits), expected_logits, **ONNX_TOLERANCE)
    torch.testing.assert_close(torch.from_numpy(attention), expected_attention, **ONNX_TOLERANCE)


@pytest.mark.parametrize(
    "path, format, opset, message",
    [
        ("m.pt2", "onnx", None, "{path}: the onnx format writes a .onnx file, not .pt2"),  # before: ONNX in a .pt2
        ("m", "pt2", None, "{path}: the pt2 format writes a .pt2 file, not one without a suffix"),
        ("m.onnx", "onnx", 5, "opset 5 is outside [13, {top}], the opsets the ONNX exporter writes"),  # before: 18
        ("m.pt2", "pt2", 18, "an opset is an ONNX setting; format 'pt2' takes none"),
    ],
)
def test_a_file_name_or_opset_the_format_cannot_write_is_refused_first(tmp_path, path, format, opset, message):
    from simpool.models.export import max_opset

    vit, _ = _model("vit-simpool")
    with pytest.raises(ValueError) as error:
        export_model(vit, tmp_path / path, format, opset=opset)
    assert str(error.value) == message.format(top=max_opset(), path=tmp_path / path)
    assert not list(tmp_path.iterdir())


def test_cli_takes_the_image_size_from_model_kwargs(tmp_path, capsys):
    # before: --img-size unset exported at timm's 224 and refused the 32-pixel ViT of --model-kwargs img_size=32
    kwargs = [f"{k}={v}" for k, v in VIT.items()]
    out = tmp_path / "m.pt2"
    argv = ["export", "--model", "vit_tiny_patch16_224", "--pool", "simpool", "--model-kwargs", *kwargs]
    assert main([*argv, "--format", "pt2", "--out", str(out)]) == 0, capsys.readouterr().err
    assert '"input_shape": [\n    null,\n    3,\n    32,\n    32\n  ]' in capsys.readouterr().out
    program = torch.export.load(str(out)).module()
    assert program(torch.randn(3, 3, 32, 32)).shape == (3, 32)  # pooled features (no classifier): (B, C)
