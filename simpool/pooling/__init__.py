"""The pooling framework and its methods behind one contract (see ``base.py``).

``create_pool(name, dim, **kwargs)`` builds any registered pool; ``list_pools()`` names them.
"""

from .base import Pool, as_tokens, attention_layout, uniform_attention
from .registry import create_pool, list_pools, register_pool
from .simple import GAP, gap
from .simpool import MIN_OVER, SimPool, simpool, simpool_direct

__all__ = [
    "GAP",
    "MIN_OVER",
    "Pool",
    "SimPool",
    "as_tokens",
    "attention_layout",
    "create_pool",
    "gap",
    "list_pools",
    "register_pool",
    "simpool",
    "simpool_direct",
    "uniform_attention",
]
