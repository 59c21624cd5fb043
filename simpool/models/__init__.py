"""Build or convert timm models so that their final pooling is any simpool pool."""

from .attention import attention_maps, cls_attention_all
from .checkpoint import load_checkpoint, save_checkpoint
from .export import export_model
from .factory import create_model, pool_input, pool_slot, replace_pool
from .families import FAMILIES, family_of, list_families
from .official import build_official, create_official_model, list_official

__all__ = [
    "FAMILIES",
    "attention_maps",
    "build_official",
    "cls_attention_all",
    "create_official_model",
    "create_model",
    "export_model",
    "family_of",
    "list_families",
    "list_official",
    "load_checkpoint",
    "pool_input",
    "pool_slot",
    "replace_pool",
    "save_checkpoint",
]
