"""Reading checkpoints never executes code; mismatches are reported by name; ``simpool convert``."""

from __future__ import annotations

import argparse
import pickle

import pytest
import torch
from safetensors.torch import load_file, safe_open
from torch import nn

from simpool.cli import main
from simpool.models import load_checkpoint, save_checkpoint
from simpool.models.checkpoint import read_state_dict
from simpool.models.official import build_official
from tests.conftest import TINY_VIT

torch.set_num_threads(1)


class CreatesAFile:
    """Unpickling this object calls ``open(path, "w")``: code from the file runs and a file appears."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def tiny() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"0.weight": torch.zeros(4, 3)}, "x": CreatesAFile(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match="refusing to load"):
        load_checkpoint(tiny(), path)
    assert not marker.exists()
    # the file is a real exploit: an unrestricted unpickler does create the file
    if writer == "pickle.dump":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


def test_refusal_names_the_global_it_would_import(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": CreatesAFile(tmp_path / "never")}, path)
    with pytest.raises(ValueError, match="open"):
        read_state_dict(path)
    assert not (tmp_path / "never").exists()


def test_training_args_namespace_is_read_as_plain_data(tmp_path):
    # timm's saver and DINO store argparse.Namespace args next to the weights.
    model = tiny()
    torch.save({"state_dict": model.state_dict(), "args": argparse.Namespace(lr=0.1), "epoch": 3}, tmp_path / "a.pth")
    assert read_state_dict(tmp_path / "a.pth").keys() == model.state_dict().keys()


def test_shape_mismatch_names_the_tensor_and_both_shapes(tmp_path):
    state = dict(tiny().state_dict(), **{"0.weight": torch.zeros(5, 3)})
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"0\.weight: checkpoint has shape \(5, 3\), model has \(4, 3\)"):
        load_checkpoint(tiny(), tmp_path / "bad.pth")


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = tiny().state_dict()
    state["extra.weight"] = state.pop("1.bias")
    save_checkpoint(state, tmp_path / "odd.safetensors")
    with pytest.raises(ValueError, match=r"missing \['1\.bias'\], unexpected \['extra\.weight'\]"):
        load_checkpoint(tiny(), tmp_path / "odd.safetensors")
    report = load_checkpoint(tiny(), tmp_path / "odd.safetensors", strict=False)
    assert (report["missing"], report["unexpected"], report["layout"]) == (["1.bias"], ["extra.weight"], "simpool")


def test_our_checkpoint_round_trips(tmp_path):
    model, other = tiny(), tiny()
    save_checkpoint(model, tmp_path / "m.safetensors")
    load_checkpoint(other, tmp_path / "m.safetensors")
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_convert_cli_writes_a_clean_checkpoint_of_ours(tmp_path, capsys):
    # An official supervised ViT (timm fork keys, SimPool under gp.pool with the official names) ...
    kwargs = dict(**TINY_VIT, num_classes=5)
    model = build_official("vit_small_patch16_224", "vit_supervised", 1.25, **kwargs).eval()
    with torch.no_grad():
        model.attn_pool.pool.norm.weight.uniform_(0.5, 1.5)
    renames = {"attn_pool.pool.norm.": "gp.pool.norm_patches.", "attn_pool.pool.q.": "gp.pool.wq.",
               "attn_pool.pool.k.": "gp.pool.wk."}  # fmt: skip
    official = {}
    for name, value in model.state_dict().items():
        for ours, theirs in renames.items():
            name = name.replace(ours, theirs)
        official[name] = value
    torch.save({"state_dict": official, "args": argparse.Namespace(gamma=1.25)}, tmp_path / "sup.pth.tar")
    # ... converts to our names, and the result loads strictly and gives the same outputs.
    out = tmp_path / "sup.safetensors"
    assert main(["convert", "--checkpoint", str(tmp_path / "sup.pth.tar"), "--out", str(out)]) == 0
    assert '"layout": "timm_fork"' in capsys.readouterr().out
    assert set(load_file(out)) == set(model.state_dict())
    with safe_open(out, "pt") as f:
        assert f.metadata()["layout"] == "timm_fork"
    fresh = build_official("vit_small_patch16_224", "vit_supervised", 1.25, **kwargs).eval()
    load_checkpoint(fresh, out)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x))


def test_convert_refuses_an_unsafe_file_and_writes_nothing(tmp_path, capsys):
    torch.save({"x": CreatesAFile(tmp_path / "never")}, tmp_path / "evil.pth")
    assert (
        main(["convert", "--checkpoint", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "out.safetensors")]) == 2
    )
    assert "refusing" in capsys.readouterr().err
    assert not (tmp_path / "out.safetensors").exists() and not (tmp_path / "never").exists()


def test_convert_with_a_preset_checks_the_file_fits_and_writes_nothing_otherwise(tmp_path, capsys):
    torch.save({"teacher": {"backbone.conv1.weight": torch.zeros(8, 3, 7, 7)}}, tmp_path / "small.pth")
    out = tmp_path / "out.safetensors"
    assert (
        main(["convert", "--checkpoint", str(tmp_path / "small.pth"), "--out", str(out), "--preset", "resnet50_dino"])
        == 2
    )
    assert "conv1.weight: checkpoint has shape (8, 3, 7, 7), model has (64, 3, 7, 7)" in capsys.readouterr().err
    assert not out.exists()


def _cut(path, keep):
    """Keep the first ``keep`` bytes of ``path`` (a fraction when below 1): a download or a copy cut short."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    return path


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_text("this is a text file, not weights\n"), "is not a safetensors file"),
        (lambda p: p.write_bytes(b"abc"), "is not a safetensors file"),
        (lambda p: _cut(save_checkpoint(tiny(), p), 0.5), "is truncated"),  # the header whole, data cut
        (lambda p: _cut(save_checkpoint(tiny(), p), 20), "is truncated"),  # the header cut
    ],
)
def test_a_text_or_truncated_safetensors_file_is_named(tmp_path, write, message):
    # before: safetensors' "SafetensorError: Error while deserializing header: header too large", no file named
    path = tmp_path / "model.safetensors"
    write(path)
    with pytest.raises(ValueError, match=f"{path}.* {message}"):
        read_state_dict(path)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.999, 100])
def test_a_truncated_torch_file_is_named(tmp_path, legacy, keep):
    # before: OSError "[Errno 22] Invalid argument" (zip), IndexError or "refusing to load" (legacy pickle)
    path = tmp_path / "model.pth"
    torch.save({"state_dict": tiny().state_dict()}, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ValueError, match=f"{path} is truncated"):
        read_state_dict(_cut(path, keep))


def test_a_text_file_as_a_torch_file_is_named(tmp_path):
    # before: KeyError 101 from torch's legacy loader
    (tmp_path / "model.pth").write_text("hello\n")
    with pytest.raises(ValueError, match=f"{tmp_path / 'model.pth'} is not a checkpoint"):
        read_state_dict(tmp_path / "model.pth")


def test_attention_with_a_checkpoint_of_another_width_names_the_checkpoint_not_the_pool(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from simpool.models import create_model

    narrow = create_model("vit_tiny_patch16_224", pool="simpool", num_classes=0, img_size=32, depth=1)
    save_checkpoint(narrow, tmp_path / "tiny.safetensors")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    argv = ["attention", str(tmp_path / "a.png"), "--model", "vit_small_patch16_224", "--model-kwargs", "img_size=32"]
    argv += ["depth=1", "--checkpoint", str(tmp_path / "tiny.safetensors"), "--out", str(tmp_path / "out")]
    assert main(argv + ["--device", "cpu", "--no-progress"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"checkpoint {tmp_path / 'tiny.safetensors'} does not fit the model" in line
    assert "differ in shape, first pos_embed: checkpoint has shape (1, 4, 192), model has (1, 4, 384)" in line
