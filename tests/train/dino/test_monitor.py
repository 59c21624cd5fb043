"""The k-NN monitor's class-balanced subset."""

from __future__ import annotations

from simpool.train.dino.monitor import spread_over_classes


def test_the_knn_subset_takes_an_equal_share_of_every_class():
    targets = [0] * 6 + [1] * 2 + [2] * 10  # a class-sorted folder: 18 images
    # share 9 // 3 = 3: class 0 at 0, 2.5 -> 3 (round half to even), 5; class 1 has only 2; class 2 at 8, 12.5, 17
    assert spread_over_classes(targets, 9) == [0, 2, 5, 6, 7, 8, 12, 17]
    assert spread_over_classes(targets, 0) == list(range(18)) == spread_over_classes(targets, 18)
