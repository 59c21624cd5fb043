"""Attention maps, masks, boxes and figure grids."""

from .overlay import normalize_map, overlay, upsample_map

__all__ = ["normalize_map", "overlay", "upsample_map"]
