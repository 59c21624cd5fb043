"""The pooling framework and its methods behind one contract (see ``base.py``).

``create_pool(name, dim, **kwargs)`` builds any registered pool; ``list_pools()`` names them.
Table 1 groups: 1 ``simple.py``, 2 ``iterative.py``, 3 ``reweighting.py``, 4 ``transformer.py``,
5 ``simpool.py``; Algorithm 1 and its components in ``framework.py``. The attentive-probing heads:
``probing.py`` (ep, aim, coca, cae), ``probing_blocks.py`` (map, jepa), ``clip_pool.py``, ``mil.py`` (abmilp),
``dolg.py``, ``esimpool.py``; ``dinovit`` in ``transformer.py``. ``list_aliases()``: other names of pools
(efficient-probing's ``siglip`` is ``map``; its ``cbam`` and ``clip`` heads are ``cbam_ep`` and ``clip_ep``).
"""

from .assignment import hard_assignment, kmeans, sinkhorn
from .base import Pool, as_tokens, attention_layout, uniform_attention
from .clip_pool import AttentionPool2d
from .dolg import DOLGPool
from .esimpool import ESimPool
from .framework import (
    ATTENTIONS,
    SIMILARITIES,
    Components,
    PoolingFramework,
    components_of,
    simpool_framework,
)
from .iterative import OTK, KMeans, SlotAttention, otk
from .mil import ABMILPool, abmil
from .min_over import MIN_OVER
from .probing import (
    AttentionalPooler,
    AttentionPoolingClassifier,
    CAEAttentivePool,
    EfficientProbing,
    efficient_probing,
    image_attention,
    query_attention,
)
from .probing_blocks import AttentionPoolLatent, AttentivePooler
from .registry import create_pool, list_aliases, list_pools, register_alias, register_pool
from .reweighting import CBAM, GatherExcite, SqueezeExcitation
from .simple import GAP, HOW, LSE, GAPMax, GeM, MaxPool, gap, gem, how, lse, max_pool
from .simpool import SimPool, simpool, simpool_direct
from .transformer import CaiTPool, ClassAttentionPool, DinoViTPool, ViTPool, class_attention

__all__ = [
    "ATTENTIONS",
    "CBAM",
    "GAP",
    "HOW",
    "LSE",
    "MIN_OVER",
    "OTK",
    "SIMILARITIES",
    "ABMILPool",
    "AttentionPool2d",
    "AttentionPoolLatent",
    "AttentionPoolingClassifier",
    "AttentionalPooler",
    "AttentivePooler",
    "CAEAttentivePool",
    "CaiTPool",
    "ClassAttentionPool",
    "Components",
    "DOLGPool",
    "DinoViTPool",
    "ESimPool",
    "EfficientProbing",
    "GAPMax",
    "GatherExcite",
    "GeM",
    "KMeans",
    "MaxPool",
    "Pool",
    "PoolingFramework",
    "SimPool",
    "SlotAttention",
    "SqueezeExcitation",
    "ViTPool",
    "abmil",
    "as_tokens",
    "attention_layout",
    "class_attention",
    "components_of",
    "create_pool",
    "efficient_probing",
    "gap",
    "gem",
    "hard_assignment",
    "how",
    "image_attention",
    "kmeans",
    "list_aliases",
    "list_pools",
    "lse",
    "max_pool",
    "otk",
    "query_attention",
    "register_alias",
    "register_pool",
    "simpool",
    "simpool_direct",
    "simpool_framework",
    "sinkhorn",
    "uniform_attention",
]
