"""Attention maps, masks, boxes, figure grids and an HTML gallery (paper Figures 1, C2-C9)."""

from ..models.loading import load_model, set_image_size  # the one loader of every command, re-exported
from .boxes import attention_box, box_iou, draw_boxes, read_boxes
from .figures import figure_grid, gamma_label
from .gallery import gallery_html, write_gallery
from .maps import compute_maps, map_sources
from .masks import mass_mask, overlay_mask
from .overlay import normalize_map, overlay, to_rgb, upsample_map
from .report import Checkpoint, ReportConfig, attention_report

__all__ = [
    "Checkpoint",
    "ReportConfig",
    "attention_box",
    "attention_report",
    "box_iou",
    "compute_maps",
    "draw_boxes",
    "figure_grid",
    "gallery_html",
    "gamma_label",
    "load_model",
    "map_sources",
    "mass_mask",
    "normalize_map",
    "overlay",
    "overlay_mask",
    "read_boxes",
    "set_image_size",
    "to_rgb",
    "upsample_map",
    "write_gallery",
]
