"""A training image size other than the one the model was built for is one line naming both (before: timm's
assertion traceback from the first forward pass)."""

from __future__ import annotations

from simpool.cli.main import main
from tests.train.conftest import overrides


def test_data_img_size_other_than_the_models_is_one_line(tiny_data, tmp_path, capsys):
    assert (
        main(
            ["train", *overrides(tiny_data, tmp_path / "runs", train__epochs=1, train__batch_size=8, data__img_size=64)]
        )
        == 2
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "simpool train: error: data.img_size 64 is not the 32x32 input VisionTransformer was built for: set them "
        "equal (timm's img_size), or build it with dynamic_img_size=true"
    )


def test_a_dynamic_vit_takes_another_size(tiny_data, tmp_path):
    extra = dict(data__img_size=48, train__batch_size=8, train__epochs=1, train__progress="false")
    kwargs = "{img_size: 32, patch_size: 8, embed_dim: 32, depth: 1, num_heads: 2, dynamic_img_size: true}"
    assert main(["train", *overrides(tiny_data, tmp_path / "runs", model__kwargs=kwargs, **extra)]) == 0
