"""Parameters and FLOPs."""

from .resources import count_flops, count_parameters, resources

__all__ = ["count_flops", "count_parameters", "resources"]
