"""``model.sync_bn`` with ``model.split_bn`` is refused in one line, as timm's train.py does."""

from __future__ import annotations

import pytest

from simpool.train.supervised.config import SupervisedConfig
from simpool.train.supervised.recipe import SupervisedRecipe


def test_sync_bn_with_split_bn_is_refused():
    config = SupervisedConfig()
    config.data.aug_splits, config.model.split_bn, config.model.sync_bn = 2, True, True
    with pytest.raises(ValueError, match="model.sync_bn=true with model.split_bn=true"):
        SupervisedRecipe(config).check()
    config.model.sync_bn = False
    SupervisedRecipe(config).check()
