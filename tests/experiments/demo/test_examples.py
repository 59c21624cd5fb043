"""The docs' example that reads a ``simpool demo`` run: ``corloc_anatomy.py``."""

from __future__ import annotations

import dataclasses
import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from simpool.data.bench import SimPoolBench
from simpool.experiments.demo import attention_scores, bench_vit, demo_config, predict
from simpool.models import save_checkpoint
from tests.experiments.conftest import needs_fmnist

EXAMPLES = Path(__file__).parents[3] / "docs" / "examples"


def test_corloc_anatomy_on_hand_made_maps():
    anatomy = runpy.run_path(str(EXAMPLES / "corloc_anatomy.py"))["anatomy"]
    maps = np.zeros((4, 8, 8), dtype=np.float32)  # 8 x 8 patches of 8 pixels: a 64-pixel image
    maps[0, 0, 0] = 1.0  # all the mass on one patch of a 4 x 4-patch object
    maps[1, :4, :4] = 1.0  # uniform over that object: the last 10 of its 16 patches in raster order are kept
    maps[2, 0, 0] = maps[2, 7, 7] = 0.5  # two far corners of an object filling the image: 2 components
    maps[3, :4, :4] = 0.03  # 0.55 on the object's corner patch, 0.03 on each of its 15 others: with 60% of the
    maps[3, 0, 0] = 0.55  # mass, the corner and the last 2 others ((3, 2), (3, 3); cumsum 14 x 0.03 > 0.4)
    boxes = np.array([[0, 0, 32, 32], [0, 0, 32, 32], [0, 0, 64, 64], [0, 0, 32, 32]])
    rows = anatomy(maps, boxes, 8, 64)
    assert rows["images"] == 4 and rows["object box, in patches (mean)"] == pytest.approx((16 + 16 + 64 + 16) / 4)
    assert rows["kept patches (mean)"] == pytest.approx((1 + 10 + 2 + 3) / 4)
    assert rows["components (mean)"] == pytest.approx((1 + 1 + 2 + 2) / 4)
    assert rows["share of kept patches in the biggest component (mean)"] == pytest.approx((1 + 1 + 1 / 2 + 2 / 3) / 4)
    # boxes: one patch (IoU 1/16); rows 1-3 (24 x 32 / 32^2); one corner (1/64); (3, 2)-(3, 3) (16 x 8 / 32^2)
    assert rows["IoU of the box (mean)"] == pytest.approx((1 / 16 + 0.75 + 1 / 64 + 0.125) / 4, rel=1e-5)
    assert rows["CorLoc"] == pytest.approx(25.0)
    # every miss is a box inside the object's; boxes around all kept patches find maps 1, 2 and 3
    assert rows["misses whose box lies inside the object's"] == 3 and rows["misses whose box does not"] == 0
    assert rows["CorLoc, box around every kept patch"] == pytest.approx(75.0)
    # with 90% of the mass, map 3 keeps its corner and 12 others (cumsum 4 x 0.03 > 0.1): one component, the
    # object's box; maps 0 and 2 keep what they kept
    assert rows["CorLoc, 60% of the mass kept"] == pytest.approx(25.0)
    assert rows["CorLoc, 90% of the mass kept"] == pytest.approx(50.0)


@needs_fmnist
def test_corloc_anatomy_reproduces_a_runs_scores(tmp_path, capsys):
    main = runpy.run_path(str(EXAMPLES / "corloc_anatomy.py"))["main"]
    config = demo_config("quick", seed=3, eval_images=12, depth=1)
    data = SimPoolBench(config.eval_split, "original", config.bench(), num_images=12)
    results = {}
    for kind, source in (("cls", "cls"), ("simpool", "pool")):  # untrained models stand for a run's
        torch.manual_seed(len(kind))
        model = bench_vit(kind, config)
        save_checkpoint(model, tmp_path / f"{kind}.safetensors")
        results[kind] = attention_scores(predict(model, data, torch.device("cpu"), source), config.patch_size)
    report = {"config": dataclasses.asdict(config), "results": results}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert main([str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert f"| CorLoc | {results['cls']['CorLoc']:.2f} | {results['simpool']['CorLoc']:.2f} |" in table
    assert "| images | 12 | 12 |" in table
    results["cls"]["CorLoc"] += 10  # a report of other weights is refused, naming the metric
    (tmp_path / "report.json").write_text(json.dumps(report))
    with pytest.raises(SystemExit, match="cls: CorLoc"):
        main([str(tmp_path), "--kind", "cls"])
