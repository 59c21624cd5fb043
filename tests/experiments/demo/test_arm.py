"""One arm of the demo, a recipe run by the engine: its curves are evaluations of its checkpoints and leave the
training unchanged."""

from __future__ import annotations

import dataclasses

import torch

from simpool.experiments.demo import CURVE_KEYS, CURVE_VARIANTS, bench_vit, demo_config, evaluate_model, train_model
from tests.experiments.conftest import needs_fmnist


@needs_fmnist
def test_curves_are_evaluations_and_leave_the_training_unchanged(capsys):
    # 48 images in batches of 16: 3 updates, measured at initialisation and after each
    config = demo_config("quick", train_images=48, batch_size=16, depth=1, curve_points=3, curve_images=8)
    device = torch.device("cpu")
    trained = train_model("simpool", config, device, progress=True)
    points = trained["curves"]
    assert trained["steps"] == 3 and [p["step"] for p in points] == [0, 1, 2, 3]
    assert [p["epoch"] for p in points] == [0.0, 16 / 48, 32 / 48, 1.0]
    assert all(set(p) == {"step", "epoch", *CURVE_KEYS} for p in points)
    # with progress on, each point is printed as it is measured, with its numbers
    printed = capsys.readouterr().out
    assert printed.count("simpool update ") == 4
    assert f"simpool update 3 (epoch 1.00): top-1 original {points[-1]['top1_original']:.3f}," in printed
    # the last point is the trained model scored on the curves' 8 images, the first the untrained one of the seed
    last = evaluate_model("simpool", trained["model"], config, device, False, CURVE_VARIANTS, 8)
    torch.manual_seed(config.seed)
    first = evaluate_model("simpool", bench_vit("simpool", config), config, device, False, CURVE_VARIANTS, 8)
    for key, name in CURVE_KEYS.items():
        assert (points[-1][key], points[0][key]) == (last[name], first[name])
    # the same weights and losses without the curves
    plain = train_model("simpool", dataclasses.replace(config, curve_points=0), device, progress=False)
    assert plain["curves"] == [] and plain["loss"] == trained["loss"] and plain["curve_seconds"] == 0.0
    for name, value in plain["model"].state_dict().items():
        assert torch.equal(value, trained["model"].state_dict()[name]), name
