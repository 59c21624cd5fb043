"""simpool: attention-based global pooling for vision models (SimPool, ICCV 2023) and its framework."""

from .models import attention_maps, create_model, export_model, list_families, replace_pool
from .pooling import SimPool, create_pool, list_pools

__version__ = "0.1.0"

__all__ = [
    "SimPool",
    "attention_maps",
    "create_model",
    "create_pool",
    "export_model",
    "list_families",
    "list_pools",
    "replace_pool",
    "__version__",
]
