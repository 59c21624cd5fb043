"""One registry from pool name to constructor: ``create_pool(name, dim, **kwargs)``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_POOLS: dict[str, Callable[..., nn.Module]] = {}


def register_pool(name: str) -> Callable:
    """Class decorator: make a pool constructible by ``create_pool(name, dim, ...)``."""

    def wrap(constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _POOLS:
            raise ValueError(f"pool {name!r} is registered twice")
        _POOLS[name] = constructor
        if isinstance(constructor, type):
            constructor.pool_type = name
        return constructor

    return wrap


def pool_constructor(name: str) -> Callable[..., nn.Module]:
    """The constructor registered as ``name`` (its class, for class-based pools)."""
    if name not in _POOLS:
        raise ValueError(f"unknown pool {name!r}; valid pools: {', '.join(list_pools())}")
    return _POOLS[name]


def list_pools() -> list[str]:
    """Names accepted by ``create_pool`` and ``create_model(..., pool=name)``, sorted."""
    return sorted(_POOLS)


def create_pool(name: str, dim: int, **kwargs) -> nn.Module:
    """Build the pool registered as ``name`` for features of ``dim`` channels.

    Raises:
        ValueError: ``name`` is not registered; the message lists the valid names.
    """
    if name not in _POOLS:
        raise ValueError(f"unknown pool {name!r}; valid pools: {', '.join(list_pools())}")
    return _POOLS[name](dim, **kwargs)
