"""Parameter and MAC counts against the paper's Table 8 (1000 classes, 224x224)."""

import pytest
import torch

from simpool.analysis import count_flops, resources

# model: (params baseline, params SimPool) in millions, GFLOPs baseline (the paper's convention), Table 8
TABLE_8 = {
    "resnet18": (11.7, 12.2, 1.82),
    "resnet50": (25.6, 33.9, 4.13),
    "convnext_small": (50.2, 51.4, 8.68),
    "vit_small_patch16_224": (22.1, 22.3, 4.24),
}


@pytest.mark.slow  # 224-px models under the FLOP counter
@pytest.mark.parametrize("name", sorted(TABLE_8))
def test_table_8(name):
    params_base, params_simpool, gflops_base = TABLE_8[name]
    base = resources(name, "default")
    ours = resources(name, "simpool")
    assert round(base["params_m"], 1) == params_base
    assert round(ours["params_m"], 1) == params_simpool
    assert abs(base["gmacs_paper"] - gflops_base) < 0.05
    # the efficient SimPool costs a fraction of the direct formula (no d x d x p key projection)
    assert ours["pool_gmacs"] < 0.1 * ours["pool_gmacs_direct"]


@pytest.mark.slow  # a 224-px ViT-S under the FLOP counter
def test_vit_attention_is_counted_only_in_the_full_convention():
    row = resources("vit_small_patch16_224", "default")
    # 12 blocks x 2 matmuls (QK^T and AV) x 6 heads x 197 x 197 x 64 multiply-accumulates
    attention = 12 * 2 * 6 * 197 * 197 * 64 / 1e9
    assert row["gmacs"] - row["gmacs_paper"] == pytest.approx(attention, rel=1e-6)


def test_count_flops_of_a_matmul():
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    assert count_flops(torch.mm, a, b) == 2 * 3 * 4 * 5  # two FLOPs per multiply-accumulate


@pytest.mark.slow  # a 224-px ResNet-18 under the FLOP counter, twice
def test_cli_prints_a_table(capsys, tmp_path):
    from simpool.cli import main

    out = tmp_path / "rows.json"
    assert main(["resources", "--model", "resnet18", "--pool", "default", "simpool", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resnet18" in printed and "simpool" in printed and out.exists()
