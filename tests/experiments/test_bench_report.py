"""The demo report's tables and sentences: its curves, the comparison at matched accuracy and with the maps that
ignore the image, from hand-made numbers."""

from __future__ import annotations

from simpool.experiments.bench_report import (
    baseline_sentences,
    baseline_table,
    curve_sentences,
    markdown_table,
    matched_points,
    matched_sentence,
    verdict,
)


def test_curve_sentences_from_hand_made_curves():
    def point(step, box, mass, rand):
        keys = ("step", "epoch", "top1_original", "top1_mixed_rand", "MaxBoxAccV2", "mask_mass")
        return dict(zip(keys, (step, step / 10, 0.5, rand, box, mass), strict=True))

    # CLS reaches 40 at update 8 only; SimPool at update 4 (45.0); the point nearest 0.75 * 8 = 6 is update 6 for
    # both: CLS moves 41.0 - 30.0 = +11.0 over the last quarter, SimPool 50.0 - 48.0 = +2.0; only SimPool >= 0.6
    curves = {
        "cls": [
            point(0, 10.0, 0.2, 0.1),
            point(4, 20.0, 0.2, 0.2),
            point(6, 30.0, 0.25, 0.3),
            point(8, 41.0, 0.3, 0.5),
        ],
        "simpool": [
            point(0, 10.0, 0.2, 0.1),
            point(4, 45.0, 0.3, 0.4),
            point(6, 48.0, 0.4, 0.6),
            point(8, 50.0, 0.5, 0.7),
        ],
    }
    first_cls, first_sim, end = curve_sentences(curves, gate=0.6, level=40.0)
    assert first_cls == "CLS attention first reaches MaxBoxAccV2 40 at update 8 of 8 (epoch 0.80, 41.0)."
    assert first_sim == "SimPool attention first reaches MaxBoxAccV2 40 at update 4 of 8 (epoch 0.40, 45.0)."
    assert end == (
        "At the end (update 8, epoch 0.80): CLS MaxBoxAccV2 41.0, mask mass 0.300, mixed_rand top-1 0.500; "
        "SimPool MaxBoxAccV2 50.0, mask mass 0.500, mixed_rand top-1 0.700; over the last quarter of the updates "
        "MaxBoxAccV2 moved +11.0 (CLS) and +2.0 (SimPool), and only SimPool passes the 0.6 gate."
    )
    never = curve_sentences({"cls": curves["cls"]}, gate=0.6, level=45.0)[0]
    assert never == "CLS attention never reaches MaxBoxAccV2 45 in 8 updates (its highest: 41.0 at update 8)."
    assert curve_sentences({}, gate=0.6) == []


def test_curve_sentences_name_their_level():
    points = [{"step": 0, "epoch": 0.0, "top1_mixed_rand": 0.1, "MaxBoxAccV2": 30.0, "mask_mass": 0.2}]
    points.append({"step": 4, "epoch": 0.4, "top1_mixed_rand": 0.2, "MaxBoxAccV2": 45.0, "mask_mass": 0.3})
    label = "the centre map's MaxBoxAccV2 on the curves' images (42.0)"
    first = curve_sentences({"simpool": points}, gate=0.6, level=42.0, label=label)[0]
    assert first == f"SimPool attention first reaches {label} at update 4 of 4 (epoch 0.40, 45.0)."


def test_matched_points_pick_each_models_first_point_at_the_common_level():
    def point(step, rand, box):
        return {"step": step, "epoch": step / 10, "top1_mixed_rand": rand, "MaxBoxAccV2": box, "mask_mass": box / 100}

    cls = [point(0, 0.1, 10.0), point(4, 0.45, 20.0), point(8, 0.55, 30.0)]
    sim = [point(0, 0.1, 10.0), point(4, 0.5, 40.0), point(8, 0.7, 45.0)]
    # CLS's best is 0.55 < gate 0.6: the level is 0.55; CLS first reaches it at update 8, SimPool at update 8
    # (0.5 at update 4 is below it)
    matched = matched_points({"cls": cls, "simpool": sim}, gate=0.6)
    assert matched["level"] == 0.55 and matched["points"] == {"cls": cls[2], "simpool": sim[2]}
    # both pass the gate: the level is the gate, and SimPool's first point above it is taken, not its last
    cls[2]["top1_mixed_rand"], sim[1]["top1_mixed_rand"] = 0.65, 0.62
    matched = matched_points({"cls": cls, "simpool": sim}, gate=0.6)
    assert matched["level"] == 0.6 and matched["points"] == {"cls": cls[2], "simpool": sim[1]}
    assert matched_points({"cls": []}, gate=0.6) is None and matched_sentence(None, 0.6) == []


def test_matched_sentence_names_the_split_of_the_choice_and_of_the_scores():
    def scores(rand, box, pxap, mass):
        return {"acc_mixed_rand": rand, "MaxBoxAccV2": box, "PxAP": pxap, "mask_mass": mass}

    matched = {
        "level": 0.55,
        "chosen_on": "val",
        "evaluated_on": "test",
        "points": {"cls": {"step": 8, "top1_mixed_rand": 0.55}, "simpool": {"step": 4, "top1_mixed_rand": 0.61}},
        "results": {"cls": scores(0.5, 30.0, 20.0, 0.3), "simpool": scores(0.52, 45.0, 25.0, 0.4)},
        "mean_map": {"cls": scores(0, 28.0, 18.0, 0), "simpool": scores(0, 35.0, 19.0, 0)},
    }
    assert matched_sentence(matched, 0.6) == [
        "At matched accuracy, chosen on val (mixed_rand top-1 >= 0.550, the highest level both reach): CLS at "
        "update 8 (val mixed_rand 0.550), SimPool at update 4 (val mixed_rand 0.610); these checkpoints on test: "
        "CLS mixed_rand top-1 0.500, MaxBoxAccV2 30.0 (its mean map 28.0), PxAP 20.0 (its mean map 18.0), mask "
        "mass 0.300; SimPool mixed_rand top-1 0.520, MaxBoxAccV2 45.0 (its mean map 35.0), PxAP 25.0 (its mean "
        "map 19.0), mask mass 0.400."
    ]


def maps(box, pxap, corloc=1.0, mass=0.2):
    return {"MaxBoxAccV2": box, "PxAP": pxap, "CorLoc": corloc, "mask_mass": mass}


RESULTS = {
    "cls": {**maps(38.0, 30.0), "learned_object": True},
    "simpool": {**maps(50.0, 24.0), "learned_object": False},
}
BASELINES = {  # the strongest: centre on MaxBoxAccV2 (42), box_prior on PxAP (26)
    "uniform": maps(20.0, 15.0),
    "centre": maps(42.0, 25.0),
    "box_prior": maps(41.0, 26.0),
    "init": {"cls": maps(21.0, 16.0), "simpool": maps(23.0, 17.0)},
    "mean_map": {"cls": maps(36.0, 22.0), "simpool": maps(40.0, 23.5)},
}


def test_baseline_sentences_compare_with_the_strongest_map_and_the_own_mean_map():
    cls, sim = baseline_sentences(RESULTS, BASELINES)
    assert cls == (
        "CLS's attention: MaxBoxAccV2 38.0, 4.0 below the strongest map that ignores the image (centre, 42.0); its "
        "own mean map scores 36.0. PxAP 30.0, 4.0 above the strongest map that ignores the image (box_prior, 26.0); "
        "its own mean map scores 22.0. At initialisation: MaxBoxAccV2 21.0, PxAP 16.0."
    )
    assert sim.startswith("SimPool's attention: MaxBoxAccV2 50.0, 8.0 above the strongest map that ignores the image")
    table = baseline_table(RESULTS, BASELINES).splitlines()
    assert table[0] == "| map | MaxBoxAccV2 | PxAP | CorLoc | mask_mass |"
    assert [row.split(" |")[0] for row in table[2:]] == [
        "| CLS attention",
        "| SimPool attention",
        "| uniform map",
        "| centre map",
        "| box_prior map",
        "| CLS at initialisation",
        "| SimPool at initialisation",
        "| CLS mean map",
        "| SimPool mean map",
    ]
    assert table[5] == "| centre map | 42.00 | 25.00 | 1.00 | 0.200 |"


def test_verdict_margins():
    gains = verdict(RESULTS, BASELINES)
    assert gains["both_learned_object"] is False and (gains["maxboxacc_gain"], gains["pxap_gain"]) == (12.0, -6.0)
    assert gains["strongest_baseline"] == {
        "MaxBoxAccV2": {"name": "centre", "value": 42.0},
        "PxAP": {"name": "box_prior", "value": 26.0},
    }
    assert gains["over_strongest_baseline"] == {
        "cls": {"MaxBoxAccV2": -4.0, "PxAP": 4.0},
        "simpool": {"MaxBoxAccV2": 8.0, "PxAP": -2.0},
    }
    assert gains["over_own_mean_map"] == {
        "cls": {"MaxBoxAccV2": 2.0, "PxAP": 8.0},
        "simpool": {"MaxBoxAccV2": 10.0, "PxAP": 0.5},
    }


def test_markdown_table_leaves_out_rows_no_model_has():
    table = markdown_table({"cls": {"MaxBoxAccV2": 1.0, "step": 3}, "simpool": {"MaxBoxAccV2": 2.0}})
    assert table.splitlines() == [
        "| metric | CLS | SimPool |",
        "|---|---|---|",
        "| update (checkpoint) | 3 | - |",
        "| MaxBoxAccV2 | 1.00 | 2.00 |",
    ]
