"""The demo's settings: presets as a base, ``key=value`` overrides checked against ``DemoConfig``, and its ViT."""

from __future__ import annotations

import pytest
import torch

from simpool.cli import main
from simpool.experiments.demo import DemoConfig, bench_vit, demo_config


def test_bench_vit_kinds_share_the_backbone():
    config = DemoConfig()
    cls, sim = bench_vit("cls", config), bench_vit("simpool", config)
    assert cls.has_class_token and not getattr(sim, "has_class_token", False)
    x = torch.randn(2, 3, 64, 64)
    assert cls(x).shape == sim(x).shape == (2, 10)
    # same blocks and patch embedding: the two differ only by the CLS token / SimPool + its LayerNorm
    shared = {k: v.shape for k, v in cls.state_dict().items() if k.startswith(("blocks", "patch_embed"))}
    assert shared == {k: v.shape for k, v in sim.state_dict().items() if k.startswith(("blocks", "patch_embed"))}
    with pytest.raises(ValueError, match="kind"):
        bench_vit("gap", config)


def test_presets_then_fields():
    # the preset is a base, the fields change it; an int given for a float field becomes a float
    config = demo_config("quick", seed=2, lr=1e-3, epochs=3)
    assert (config.train_images, config.seed, config.lr, config.epochs) == (2000, 2, 0.001, 3.0)
    assert isinstance(config.epochs, float)
    converge = demo_config("converge")  # 10x the default's updates, scored at 20 points
    assert converge.epochs * converge.train_images == 10 * DemoConfig().epochs * DemoConfig().train_images
    assert converge.curve_points == 20
    with pytest.raises(ValueError, match="learning_rate"):
        demo_config("quick", learning_rate=1)
    with pytest.raises(ValueError, match="unknown demo preset 'huge'; valid presets: cpu, quick, converge, gpu"):
        demo_config("huge")
    with pytest.raises(ValueError, match="config key 'train_images' must be in \\[1, inf\\), got 0"):
        demo_config("quick", train_images=0)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["learning_rate=1"], "unknown config key(s) learning_rate"),
        (["lr=fast"], "config key 'lr' expects a number, got 'fast'"),
        (["epochs=0"], "config key 'epochs' must be in (0, inf), got 0.0"),
    ],
)
def test_command_refuses_bad_overrides_in_one_line_before_any_work(tmp_path, capsys, overrides, message):
    out = tmp_path / "demo"
    code = main(["demo", "--quick", "--out", str(out), *overrides])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()  # refused before the study starts


def test_command_has_no_set_option(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["demo", "--quick", "--set", "lr=1"])
    assert exit.value.code == 2 and "unrecognized arguments: --set" in capsys.readouterr().err
