"""A person's mistakes on the command line: each is one line on stderr naming the input and what is valid, exit
code 2, before any work; none is answered with a silently wrong result, a traceback or a usage dump.

Every case calls ``simpool.cli.main.main`` in-process.
"""

from __future__ import annotations

import pytest
import torch

from simpool.cli.main import main
from simpool.models import create_model, save_checkpoint
from simpool.train.config import load_config, save_config
from simpool.train.supervised.config import SupervisedConfig
from tests.conftest import TINY_VIT, TINY_VIT_ARGS, TINY_VIT_YAML

TINY = ["--model", "vit_tiny_patch16_224", "--model-kwargs", *TINY_VIT_ARGS]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A supervised run's folder as ``simpool train`` leaves it, of the rendered bench (``data.dataset=bench``):
    ``config.yaml`` and ``best.safetensors`` of a 2-class tiny ViT with a SimPool pool."""
    folder = tmp_path_factory.mktemp("run")
    overrides = ["model.name=vit_tiny_patch16_224", f"model.kwargs={TINY_VIT_YAML}", "data.dataset=bench"]
    save_config(load_config(SupervisedConfig, None, [*overrides, "data.img_size=32"]), folder / "config.yaml")
    torch.manual_seed(0)
    save_checkpoint(
        create_model("vit_tiny_patch16_224", pool="simpool", num_classes=2, **TINY_VIT), folder / "best.safetensors"
    )
    return folder


def error_line(capsys, argv: list[str]) -> str:
    """The one line ``simpool ARGV`` writes on stderr, asserting exit code 2, nothing on stdout, no traceback."""
    assert main([str(arg) for arg in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and not captured.out, captured.err
    return lines[0]


@pytest.mark.parametrize(
    "data, message",
    [
        ("missing", "--data {data}: no such folder"),
        ("file.txt", "--data {data} is a file: give the dataset root holding val/<class>/<image>"),
        ("empty", "--data {data} has no val/ folder: give the root holding val/<class>/<image>"),
    ],
)
def test_validate_refuses_data_that_is_not_an_image_folder_split(run_folder, tmp_path, capsys, data, message):
    # before: the run's data.dataset=bench rendered the bench's val split and printed its top-1, exit 0
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    data = tmp_path / data
    argv = ["validate", "--checkpoint", run_folder / "best.safetensors", "--data", data, "--workers", "0"]
    assert error_line(capsys, argv) == "simpool validate: error: " + message.format(data=data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_without_cuda_is_one_line(run_folder, tmp_path, capsys):
    argv = ["validate", "--checkpoint", run_folder / "best.safetensors", "--data", tmp_path, "--device", "cuda"]
    assert (
        error_line(capsys, argv)
        == "simpool validate: error: --device cuda: CUDA is not available on this machine; valid: cpu"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["eval", "localization", "--metadata", "m", "--scoremaps", "s", "--iou-thresholds", "150"],
            "--iou-thresholds 150 is outside [0, 100]",
        ),
        # a negative number is a value, not an unknown option and a usage dump
        (
            ["eval", "localization", "--metadata", "m", "--scoremaps", "s", "--iou-thresholds", "-30"],
            "--iou-thresholds -30 is outside [0, 100]",
        ),
        (
            ["eval", "localization", "--metadata", "m", "--scoremaps", "s", "--iou-thresholds", "50", "50"],
            "--iou-thresholds gives 50 twice; give each value once",
        ),
        (
            [
                "eval",
                "discovery",
                "--dataset",
                "voc07",
                "--data",
                "d",
                *TINY,
                "--checkpoint",
                "c",
                "--threshold",
                "1.5",
            ],
            "--threshold 1.5 is outside (0, 1]",
        ),
        (
            ["export", *TINY, "--out", "m.onnx", "--opset", "5"],
            "opset 5 is outside [13, {max_opset}], the opsets the ONNX exporter writes",
        ),
        (
            ["export", *TINY, "--format", "onnx", "--out", "m.pt2"],
            "m.pt2: the onnx format writes a .onnx file, not .pt2",
        ),
        (
            ["export", *TINY, "--format", "pt2", "--out", "m.onnx"],
            "m.onnx: the pt2 format writes a .pt2 file, not .onnx",
        ),
        (
            ["attention", "x.png", *TINY, "--checkpoint", "c", "--out", "o", "--img-size", "0"],
            "--img-size 0 is outside [1, inf)",
        ),
        (["resources", "--img-size", "0"], "--img-size 0 is outside [1, inf)"),
        (["resources", "--model", "resnet18", "resnet18"], "--model gives resnet18 twice; give each value once"),
        (["eval", "knn", *TINY, "--data", "d", "--batch-size", "0"], "--batch-size 0 is outside [1, inf)"),
    ],
)
def test_a_value_outside_its_range_is_refused_before_any_work(capsys, argv, message):
    from simpool.models.export import max_opset

    command = argv[0]
    assert error_line(capsys, argv) == f"simpool {command}: error: " + message.format(max_opset=max_opset())


def test_seed_at_the_root_names_the_key_it_means(capsys):
    line = error_line(capsys, ["train", "--print-config", "seed=abc"])
    assert line.startswith("simpool train: error: unknown config key(s) seed (did you mean train.seed?); valid keys")


@pytest.mark.parametrize("command", [["attention", "x.png", *TINY, "--checkpoint", "c"], ["tournament"]])
def test_an_out_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    # before: the demo trained for 48 s, then failed writing into the file
    out = tmp_path / "report.md"
    out.write_text("x")
    assert (
        error_line(capsys, [*command, "--out", out])
        == f"simpool {command[0]}: error: --out {out} is a file: give a folder to write into"
    )


def test_the_demo_refuses_an_out_file_before_training(tmp_path, capsys):
    out = tmp_path / "report.md"
    out.write_text("x")
    assert (
        error_line(capsys, ["demo", "--quick", "--out", out])
        == f"simpool demo: error: --out {out} is a file: give a folder to write into"
    )


def test_a_missing_checkpoint_key_is_one_line(tmp_path, capsys):
    torch.save({"model": {"w": torch.zeros(1)}}, tmp_path / "c.pt")
    line = error_line(
        capsys,
        [
            "export",
            *TINY,
            "--checkpoint",
            tmp_path / "c.pt",
            "--checkpoint-key",
            "teacher",
            "--out",
            tmp_path / "m.onnx",
        ],
    )
    assert (
        line
        == f"simpool export: error: {tmp_path / 'c.pt'} has no entry 'teacher' (--checkpoint-key); entries: ['model']"
    )


@pytest.mark.parametrize(
    "option, message",
    [
        (
            ["--pool", "simpool", "--pool-kwargs", "gama=2"],
            "pool 'simpool' (pool_kwargs) takes no argument 'gama'; valid: num_heads, gamma, qkv_bias, norm_eps, "
            "min_over, use_beta",
        ),
        (
            ["--pool", "default", "--pool-kwargs", "gamma=2"],
            "pool='default' (timm's own pooling) takes no pool_kwargs, got ['gamma']: name a simpool pool, or leave "
            "them out",
        ),
    ],
)
def test_pool_kwargs_the_pool_does_not_take_are_named(tmp_path, capsys, option, message):
    assert (
        error_line(capsys, ["export", *TINY, *option, "--out", tmp_path / "m.onnx"])
        == "simpool export: error: " + message
    )


def test_a_misspelt_model_kwarg_lists_timms_arguments(tmp_path, capsys):
    line = error_line(capsys, ["export", *TINY, "img_sise=3", "--out", tmp_path / "m.onnx"])
    assert line.startswith(
        "simpool export: error: timm's VisionTransformer (model kwargs) takes no argument 'img_sise'; "
        "valid: img_size, patch_size,"
    )


@pytest.mark.parametrize(
    "pool, hint",
    [
        ("default", "a checkpoint without a CLS token, or of another image size? --pool auto reads its own pool"),
        ("auto", None),
    ],
)
def test_a_checkpoint_of_another_pool_is_named_as_such(run_folder, tmp_path, capsys, pool, hint):
    # before: "another width or depth?" for a SimPool checkpoint under --pool default
    argv = [
        "export",
        *TINY,
        "--checkpoint",
        run_folder / "best.safetensors",
        "--pool",
        pool,
        "--out",
        tmp_path / "m.pt2",
        "--format",
        "pt2",
    ]
    if hint is None:
        assert main([str(a) for a in argv]) == 0 and (tmp_path / "m.pt2").is_file()
        return
    assert error_line(capsys, argv).endswith(f"({hint})")


def test_a_class_count_other_than_the_checkpoints_is_named(run_folder, tmp_path, capsys):
    argv = [
        "export",
        *TINY,
        "--checkpoint",
        run_folder / "best.safetensors",
        "--num-classes",
        "5",
        "--out",
        tmp_path / "m.onnx",
    ]
    assert error_line(capsys, argv).endswith(
        "(another class count? set num_classes (--num-classes) to the checkpoint's, or leave it unset)"
    )


@pytest.mark.parametrize(
    "blocks, message",
    [
        (["3"], "--blocks 3 is outside [0, 0]: VisionTransformer has 1 block"),
        (["0", "0"], "--blocks gives 0 twice; give each value once"),
    ],
)
def test_blocks_beyond_the_models_depth_are_refused(tmp_path, capsys, blocks, message):
    # before: IndexError traceback from the first forward pass, after reading the dataset
    argv = ["eval", "segmentation", "--data", tmp_path, *TINY, "--blocks", *blocks, "--device", "cpu"]
    assert error_line(capsys, argv) == "simpool eval: error: " + message


def test_a_misspelt_pool_kwarg_in_a_recipe_is_one_line(tmp_path, capsys, write_image_folder):
    data = tmp_path / "data"
    write_image_folder(data / "train", per_class=4)
    argv = ["train", "model.name=vit_tiny_patch16_224", f"model.kwargs={TINY_VIT_YAML}", "data.img_size=32"]
    argv += [f"data.root={data}", "train.batch_size=4", f"train.output={tmp_path}", "model.pool_kwargs={gama: 2}"]
    assert error_line(capsys, [*argv, "data.num_workers=0", "train.device=cpu"]) == (
        "simpool train: error: pool 'simpool' (pool_kwargs) takes no argument 'gama'; valid: num_heads, gamma, "
        "qkv_bias, norm_eps, min_over, use_beta"
    )


def test_validate_fails_when_most_images_are_unreadable(run_folder, tmp_path, capsys, write_image_folder):
    # before: top-1 over the few readable images (or 0 over none), exit 0
    write_image_folder(tmp_path / "val", per_class=2)
    for path in sorted((tmp_path / "val").rglob("*.png"))[:3]:
        path.write_bytes(b"not an image")
    argv = ["validate", "--checkpoint", run_folder / "best.safetensors", "--data", tmp_path, "--workers", "0"]
    argv += ["--no-progress"]
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        line = error_line(capsys, argv)
    assert line == (
        f"simpool validate: error: 3 of 4 images of {tmp_path / 'val'} were unreadable (more than 50% may not be): "
        "the warnings above name each file; repair or remove them"
    )


def test_resources_of_a_vit_at_another_image_size(tmp_path, capsys):
    # before: AssertionError traceback "Input height (64) doesn't match model (224)"
    import json

    out = tmp_path / "rows.json"
    argv = ["resources", "--model", "vit_tiny_patch16_224", "--pool", "simpool", "--img-size", "64", "--out", out]
    assert main([str(arg) for arg in argv]) == 0
    (row,) = json.loads(out.read_text())
    built = create_model("vit_tiny_patch16_224", pool="simpool", num_classes=1000, img_size=64)  # 4x4 patches
    assert row["params_m"] == sum(p.numel() for p in built.parameters()) / 1e6
    capsys.readouterr()
    line = error_line(capsys, ["resources", "--model", "vit_tiny_patch16_224", "--img-size", "8"])
    assert line.startswith("simpool resources: error: --img-size 8 is too small for vit_tiny_patch16_224: ")
