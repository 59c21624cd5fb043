"""One registry from pool name to constructor: ``create_pool(name, dim, **kwargs)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ..utils import UnknownKeywordError

_POOLS: dict[str, Callable[..., nn.Module]] = {}
_ALIASES: dict[str, tuple[str, dict]] = {}  # another name of a pool, with the defaults that name stands for


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


def register_alias(alias: str, pool: str, **defaults) -> None:
    """Make ``alias`` another name of the registered ``pool``, built with ``defaults`` (which keyword arguments
    given to ``create_pool`` override): efficient-probing's ``siglip`` is ``map`` with ``norm=False``."""
    if alias in _POOLS or alias in _ALIASES or pool not in _POOLS:
        raise ValueError(f"alias {alias!r} is taken, or its pool {pool!r} is not registered")
    _ALIASES[alias] = (pool, dict(defaults))


def resolve(name: str) -> tuple[str, dict]:
    """The registered pool a name stands for and the defaults it implies: ``"siglip" -> ("map", {"norm": False})``."""
    if name in _ALIASES:
        pool, defaults = _ALIASES[name]
        return pool, dict(defaults)
    if name not in _POOLS:
        raise ValueError(f"unknown pool {name!r}; valid pools: {', '.join(list_pools(aliases=True))}")
    return name, {}


def pool_constructor(name: str) -> Callable[..., nn.Module]:
    """The constructor registered as ``name`` or as the pool it is an alias of (its class, for class-based pools)."""
    return _POOLS[resolve(name)[0]]


def list_pools(aliases: bool = False) -> list[str]:
    """Names accepted by ``create_pool`` and ``create_model(..., pool=name)``, sorted; with ``aliases``, the other
    names too (:func:`list_aliases`)."""
    return sorted(_POOLS) + (sorted(_ALIASES) if aliases else [])


def list_aliases() -> dict[str, str]:
    """Each alias and what it stands for, as help text shows it: ``{"siglip": "map(norm=False)"}``."""
    return {
        alias: f"{pool}({', '.join(f'{key}={value!r}' for key, value in defaults.items())})"
        for alias, (pool, defaults) in sorted(_ALIASES.items())
    }


def create_pool(name: str, dim: int, **kwargs) -> nn.Module:
    """Build the pool registered as ``name`` for features of ``dim`` channels.

    ``name`` may be an alias (:func:`list_aliases`): the pool it stands for, with its defaults under ``kwargs``.

    Raises:
        ValueError: ``name`` is not registered; the message lists the valid names.
    """
    pool, defaults = resolve(name)
    constructor = _POOLS[pool]
    try:
        return constructor(dim, **(defaults | kwargs))
    except TypeError:
        parameters = inspect.signature(constructor).parameters
        unknown = sorted(set(kwargs) - set(parameters))
        if not unknown or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            raise
        valid = [key for key in parameters if key not in ("self", "dim")]
        message = f"pool {name!r} (pool_kwargs) takes no argument {unknown[0]!r}; valid: {', '.join(valid) or 'none'}"
        raise UnknownKeywordError(message) from None
