"""The demo report's sentences on its curves and its comparison at matched accuracy, from hand-made curves."""

from __future__ import annotations

from simpool.experiments.bench_report import curve_sentences, matched_points, matched_sentence


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


def test_matched_points_pick_each_models_first_point_at_the_common_level():
    def point(step, rand, box):
        return {"step": step, "epoch": step / 10, "top1_mixed_rand": rand, "MaxBoxAccV2": box, "mask_mass": box / 100}

    cls = [point(0, 0.1, 10.0), point(4, 0.45, 20.0), point(8, 0.55, 30.0)]
    sim = [point(0, 0.1, 10.0), point(4, 0.5, 40.0), point(8, 0.7, 45.0)]
    # CLS's best is 0.55 < gate 0.6: the level is 0.55; CLS first reaches it at update 8, SimPool at update 8
    # (0.5 at update 4 is below it)
    matched = matched_points({"cls": cls, "simpool": sim}, gate=0.6)
    assert matched["level"] == 0.55 and matched["points"] == {"cls": cls[2], "simpool": sim[2]}
    assert matched_sentence(matched, 0.6) == [
        "At matched accuracy (mixed_rand top-1 >= 0.550, the highest level both reach): CLS at update 8 "
        "(mixed_rand 0.550): MaxBoxAccV2 30.0, mask mass 0.300; SimPool at update 8 (mixed_rand 0.700): "
        "MaxBoxAccV2 45.0, mask mass 0.450."
    ]
    # both pass the gate: the level is the gate, and SimPool's first point above it is taken, not its last
    cls[2]["top1_mixed_rand"], sim[1]["top1_mixed_rand"] = 0.65, 0.62
    matched = matched_points({"cls": cls, "simpool": sim}, gate=0.6)
    assert matched["level"] == 0.6 and matched["points"] == {"cls": cls[2], "simpool": sim[1]}
    assert "the 0.6 gate" in matched_sentence(matched, 0.6)[0]
    assert matched_points({"cls": []}, gate=0.6) is None and matched_sentence(None, 0.6) == []
