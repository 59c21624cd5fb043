"""Typed configuration: dataclasses own the defaults, YAML recipes and ``key=value`` overrides set them.

A recipe is a YAML mapping whose nested keys mirror the dataclass fields (``optim.lr: 0.4``). A recipe
may start from another with ``base: other.yaml`` (a path relative to the recipe), dinov2-style: the
base is loaded first and the recipe's keys replace its keys. Command-line overrides are dotted
``key=value`` pairs whose values are read as YAML (``optim.lr=1e-3``, ``model.pool_kwargs={gamma: 2}``,
``ema.decay=null``). A key that no dataclass declares is an error naming the valid keys; a value of
the wrong type is an error naming the key; a number outside the range its dataclass declares in ``BOUNDS``
(``{"epochs": "[1, inf)", "fraction": "(0, 1]"}``) is an error naming the key and the range. These
helpers are generic: supervised and DINO training both use them with their own root dataclass.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from ..utils import atomic_write_bytes

T = TypeVar("T")
BASE_KEY = "base"


@dataclasses.dataclass
class LoopConfig:
    """The settings every training loop has (the ``train`` section): batch, epochs, precision, device,
    run folder, checkpoints. Supervised and DINO recipes extend it."""

    epochs: int = 100
    batch_size: int = 256  # GLOBAL batch per optimizer update, over all processes (and accumulation steps)
    amp: str = "none"  # none | bf16 | fp16 (fp16 uses a GradScaler) | auto (bf16 or fp16 on CUDA, none on a CPU)
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 0
    num_threads: int = 0  # torch CPU threads per process; 0: torch's default
    output: str = "runs"
    name: str = ""  # run folder output/name; empty: named after the model and pool
    resume: bool = True  # continue from output/name/last.pt when it exists
    checkpoint_every: int = 0  # also write last.pt every N updates (mid-epoch); 0: at epoch ends only
    log_every: int = 50  # updates between progress-bar refreshes
    max_updates: int = 0  # stop after this many updates in total, saving last.pt to resume from; 0: no limit
    tf32: bool = True  # CUDA: TF32 matmuls and convolutions, cudnn.benchmark (false: full fp32 matmuls)
    progress: bool = True  # progress bars (rank 0)
    dist_timeout_s: int = 1800  # process-group timeout: how long ranks wait at a collective (NCCL's default: 600)
    ddp_broadcast_buffers: bool = True  # DDP copies rank 0's buffers (BatchNorm statistics) before each forward

    BOUNDS: ClassVar[dict[str, str]] = {
        "epochs": "[1, inf)",
        "batch_size": "[1, inf)",
        "num_threads": "[0, inf)",
        "checkpoint_every": "[0, inf)",
        "log_every": "[1, inf)",
        "max_updates": "[0, inf)",
        "dist_timeout_s": "[1, inf)",
    }


def from_dict(cls: type[T], data: dict | None, prefix: str = "") -> T:
    """Build the dataclass ``cls`` from a nested mapping, checking every key and value type.

    Raises:
        ValueError: an unknown key (naming it and the valid keys), a value of the wrong type, or a number
            outside the range ``cls.BOUNDS`` gives its field (naming the key and the range).
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        names = ", ".join(f"{prefix}{key}" for key in unknown)
        near = [dotted for key in unknown for dotted in _leaves(cls, prefix) if dotted.endswith(f".{key}")]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        raise ValueError(
            f"unknown config key(s) {names}{hint}; valid keys under {prefix or 'the root'!r}: {sorted(fields)}"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], prefix + name)
    config = cls(**kwargs)
    check_bounds(config, prefix)
    return config


def _leaves(cls: type, prefix: str = "") -> list[str]:
    """The dotted names of every field of the dataclass ``cls``, its sections' fields included."""
    names = []
    for field in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[field.name]
        dotted = f"{prefix}{field.name}"
        names += _leaves(hint, dotted + ".") if dataclasses.is_dataclass(hint) else [dotted]
    return names


_INTERVAL = re.compile(r"^([\[(])\s*(-inf|[-+0-9.e]+)\s*,\s*(inf|[-+0-9.e]+)\s*([\])])$")


def in_interval(value, interval: str) -> bool:
    """Whether the number ``value`` lies in ``interval``, written like ``"[1, inf)"`` or ``"(0, 1]"`` (NaN never does).

    Raises:
        TypeError: ``interval`` is not written like that.
    """
    match = _INTERVAL.match(interval)
    if match is None:
        raise TypeError(f"{interval!r} is not an interval like '[1, inf)'")
    opening, low, high, closing = match.groups()
    low, high = float(low), float(high)
    if isinstance(value, float) and math.isnan(value):
        return False
    return (low <= value if opening == "[" else low < value) and (value <= high if closing == "]" else value < high)


def check_bounds(config, prefix: str = "") -> None:
    """Every field named in ``type(config).BOUNDS`` (an interval such as ``"[1, inf)"`` or ``"(0, 1]"``)
    holds a number in its interval, or ``None``.

    Raises:
        ValueError: ``"config key train.epochs must be in [1, inf), got 0"``.
    """
    for name, interval in getattr(type(config), "BOUNDS", {}).items():
        if _INTERVAL.match(interval) is None:
            raise TypeError(
                f"{type(config).__name__}.BOUNDS[{name!r}] = {interval!r} is not an interval like '[1, inf)'"
            )
        value = getattr(config, name)
        if value is not None and not in_interval(value, interval):
            raise ValueError(f"config key {prefix + name!r} must be in {interval}, got {value!r}")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked (and, for numbers written as strings by YAML 1.1, converted) against ``hint``."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"config key {key!r} is a section; give a mapping, not {value!r}")
        return from_dict(hint, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0] if errors else f"config key {key!r} cannot be {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key!r} expects a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_coerce(v, item, key) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {key!r} expects a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {key!r} expects true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key {key!r} expects an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key {key!r} expects a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"config key {key!r} expects a string, got {value!r}")
        return value
    return value


def parse_overrides(overrides: list[str] | None) -> dict:
    """``["optim.lr=0.1", "model.pool=gap"]`` -> ``{"optim": {"lr": 0.1}, "model": {"pool": "gap"}}``."""
    nested: dict = {}
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. optim.lr=0.1)")
        try:
            value = yaml.load(text, Loader=_named_loader(f"override {key.strip()}")) if text else ""
        except yaml.YAMLError as error:
            reason = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ValueError(f"override {item!r} is not valid YAML: {reason}") from None
        node = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} was already given a value")
        node[leaf] = value
    return nested


def merge(base: dict, update: dict) -> dict:
    """A copy of ``base`` with ``update``'s keys replacing its keys, recursing into mappings."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _RecipeLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key repeated in one mapping (YAML would keep the last value silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ValueError(
                    f"{key_node.start_mark.name}: line {line}: key {key!r} repeats the one on line {seen[key]}; "
                    "give each key once"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike):
    """The YAML document at ``path`` (safe loading), a repeated key refused.

    Raises:
        ValueError: malformed YAML or a repeated key, naming the file and the line (``"a.yaml: line 3: ..."``).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a text file ({error.reason}): give a YAML recipe") from None
    try:
        return yaml.load(text, Loader=_named_loader(str(path)))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        reason = error.problem or error.context or "malformed YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise ValueError(f"{path}: {where}: {reason} (malformed YAML)") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: malformed YAML: {error}") from None


def _named_loader(name: str) -> type:
    """:class:`_RecipeLoader` whose marks name the file ``name`` instead of ``"<unicode string>"``."""

    class Loader(_RecipeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self.name = name

    return Loader


def read_recipe(path: str | os.PathLike, _chain: tuple[Path, ...] = ()) -> dict:
    """A YAML recipe as a nested dict, with its ``base:`` chain resolved.

    Raises:
        FileNotFoundError: no recipe (or base recipe) at ``path``.
        ValueError: malformed YAML, a repeated key, a recipe that is not a mapping, or ``base:`` recipes that
            include each other (naming the cycle).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}" + (f" (the base of {_chain[-1]})" if _chain else ""))
    if path.resolve() in [p.resolve() for p in _chain]:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ValueError(f"base: recipes include each other ({cycle}); remove one base: key")
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a YAML mapping, not a {type(data).__name__}")
    base = data.pop(BASE_KEY, None)
    if base is not None:
        data = merge(read_recipe(path.parent / base, (*_chain, path)), data)
    return data


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> T:
    """The dataclass ``cls`` from its defaults, then the recipe at ``path``, then ``key=value`` overrides."""
    data = read_recipe(path) if path is not None else {}
    return from_dict(cls, merge(data, parse_overrides(overrides)))


def to_dict(config) -> dict:
    """A dataclass config as plain nested dicts and lists (tuples become lists), ready for YAML."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def save_config(config, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically; ``load_config(cls, path)`` reads it back equal."""
    return atomic_write_bytes(path, yaml.safe_dump(to_dict(config), sort_keys=False).encode())


# Keys a resumed run may change freely: how the run is driven (stopping points, threads, workers, device
# and its speed settings, progress and logging, the process-group timeout) and where it lives, never the
# recipe it computes.
RESUME_IGNORED = (
    "train.resume",
    "train.max_updates",
    "train.num_threads",
    "train.log_every",
    "train.progress",
    "train.checkpoint_every",
    "train.dist_timeout_s",
    "train.device",
    "train.tf32",
    "train.output",
    "train.name",
    "data.num_workers",
)
_ABSENT = object()


def config_changes(saved: dict, new: dict, ignored: tuple[str, ...] = ()) -> list[str]:
    """The dotted keys whose values differ between two nested config dicts, sorted.

    A key present on one side only counts as changed; a mapping compares key by key, any other value
    (lists included) as a whole. Keys in ``ignored``, and keys under an ignored section, are left out.
    """
    changed = []

    def walk(a, b, prefix: str) -> None:
        for key in sorted(set(a) | set(b), key=str):
            dotted = f"{prefix}{key}"
            if dotted in ignored or any(dotted.startswith(section + ".") for section in ignored):
                continue
            left, right = a.get(key, _ABSENT), b.get(key, _ABSENT)
            if isinstance(left, dict) and isinstance(right, dict):
                walk(left, right, dotted + ".")
            elif _plain(left) != _plain(right):
                changed.append(dotted)

    walk(saved, new, "")
    return changed


def _plain(value):
    """Tuples as lists, as YAML reads them back."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def check_resume_config(
    saved: dict, new: dict, allowed: tuple[str, ...] = ("train.epochs",), ignored: tuple[str, ...] = RESUME_IGNORED
) -> str | None:
    """Whether a run whose folder holds ``saved`` (its ``config.yaml``) may resume with the config ``new``.

    Returns:
        ``None`` when nothing that matters changed, or a note such as ``"extending train.epochs from 1
        to 2"`` when only keys in ``allowed`` changed.

    Raises:
        ValueError: any other change, listing the changed keys with both values and saying how to start over.
    """
    changes = config_changes(saved, new, ignored)
    refused = [key for key in changes if key not in allowed]
    if refused:
        listed = "; ".join(f"{key}: {_lookup(saved, key)!r} -> {_lookup(new, key)!r}" for key in refused)
        present = [key for key in allowed if _lookup(new, key) != "(absent)"]  # the demo's flat config has none
        may = f"only {', '.join(present)} may change" if present else "no setting may change"
        fresh = "--no-resume (train.resume=false)" if "train" in new else "--no-resume"
        raise ValueError(
            f"the config differs from the saved config.yaml ({listed}) and {may} on resume: undo the change, "
            f"or start over with {fresh}"
        )
    if not changes:
        return None
    return "; ".join(_describe(key, _lookup(saved, key), _lookup(new, key)) for key in changes)


def _describe(key: str, old, new) -> str:
    """``"extending train.epochs from 1 to 2"`` (``shortening`` when smaller, ``changing`` when not numbers)."""
    verb = "changing"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new)):
        verb = "extending" if new > old else "shortening"
    return f"{verb} {key} from {old} to {new}"


def _lookup(config: dict, key: str):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return "(absent)"
        node = node[part]
    return node
