"""The DINO config: the head and loss sections take their defaults from DINOHead's and DINOLoss's signatures."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from simpool.train.dino.config import DinoHeadConfig, DinoLossConfig, defaults_from
from simpool.train.dino.head import DINOHead
from simpool.train.dino.loss import DINOLoss


def keyword_defaults(constructor) -> dict:
    parameters = inspect.signature(constructor).parameters.items()
    return {name: p.default for name, p in parameters if p.default is not inspect.Parameter.empty}


def test_the_head_and_loss_sections_hold_the_constructors_defaults():
    # every keyword argument with a default is a field, with that default ...
    assert dataclasses.asdict(DinoHeadConfig()) == keyword_defaults(DINOHead)
    # ... but the loss's run length, which is train.epochs
    assert dataclasses.asdict(DinoLossConfig()) == {
        name: value for name, value in keyword_defaults(DINOLoss).items() if name != "epochs"
    }
    assert DinoHeadConfig().out_dim == 65536 and DinoLossConfig().center_momentum == 0.9  # DINO's values


def test_defaults_from_fills_the_fields_without_a_value_and_refuses_unknown_ones():
    def make(size: int, depth: int = 3, act: str = "gelu"):
        return size, depth, act

    @dataclasses.dataclass
    @defaults_from(make)
    class Section:
        depth: int
        act: str = "relu"  # a field given a value keeps it

    assert Section() == Section(depth=3, act="relu")
    with pytest.raises(TypeError, match=r"Section\.size has no default"):

        @defaults_from(make)
        class Section:  # noqa: F811
            size: int
