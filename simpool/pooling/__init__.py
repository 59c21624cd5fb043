"""The pooling framework and its methods behind one contract (see ``base.py``).

``create_pool(name, dim, **kwargs)`` builds any registered pool; ``list_pools()`` names them.
Table 1 groups: 1 ``simple.py``, 2 ``iterative.py``, 3 ``reweighting.py``, 4 ``transformer.py``,
5 ``simpool.py``; Algorithm 1 and its components in ``framework.py``.
"""

from .assignment import hard_assignment, kmeans, sinkhorn
from .base import Pool, as_tokens, attention_layout, uniform_attention
from .framework import (
    ATTENTIONS,
    SIMILARITIES,
    Components,
    PoolingFramework,
    components_of,
    simpool_framework,
)
from .iterative import OTK, KMeans, SlotAttention, otk
from .registry import create_pool, list_pools, register_pool
from .reweighting import CBAM, GatherExcite, SqueezeExcitation
from .simple import GAP, HOW, LSE, GAPMax, GeM, MaxPool, gap, gem, how, lse, max_pool
from .simpool import MIN_OVER, SimPool, simpool, simpool_direct
from .transformer import CaiTPool, ClassAttentionPool, ViTPool, class_attention

__all__ = [
    "ATTENTIONS",
    "CBAM",
    "GAP",
    "GAPMax",
    "HOW",
    "KMeans",
    "LSE",
    "MIN_OVER",
    "OTK",
    "SIMILARITIES",
    "CaiTPool",
    "ClassAttentionPool",
    "Components",
    "GatherExcite",
    "GeM",
    "MaxPool",
    "Pool",
    "PoolingFramework",
    "SimPool",
    "SlotAttention",
    "SqueezeExcitation",
    "ViTPool",
    "as_tokens",
    "attention_layout",
    "class_attention",
    "components_of",
    "create_pool",
    "gap",
    "gem",
    "hard_assignment",
    "how",
    "kmeans",
    "list_pools",
    "lse",
    "max_pool",
    "otk",
    "register_pool",
    "simpool",
    "simpool_direct",
    "simpool_framework",
    "sinkhorn",
    "uniform_attention",
]
