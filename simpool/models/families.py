"""Where the final pooling of each timm family sits, and how a simpool pool goes there.

A family is a module of ``timm.models`` (``resnet``, ``efficientnet``, ``swin_transformer``...).
The paper's families keep the wiring of the official code's timm fork (docs/checkpoints.md, "The official
code"): ResNet: last stage -> pool -> classifier; ConvNeXt: stages -> pool -> head norm -> classifier;
ViT: blocks -> final norm -> pool over the patch tokens -> LayerNorm -> classifier. The LayerNorm after a
ViT's pool is ours: without it SimPool's pooled vector (non-negative, offset by the minimum's shift) trained
at half the speed of the CLS baseline in a prototype.
Every other family gets the generic wiring of ``generic.py``: the pool on ``forward_features``,
then timm's own head. ``UNSUPPORTED`` lists the families that cannot work, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from timm.layers import NormMlpClassifierHead
from timm.models.convnext import ConvNeXt
from timm.models.resnet import ResNet
from timm.models.vision_transformer import VisionTransformer, init_weights_vit_timm
from torch import nn

from .slot import PoolSlot, VectorFlatten


@dataclass(frozen=True)
class Family:
    """One timm model family: how to build it for a simpool pool and where the pool goes.

    Attributes:
        name: short family name.
        model_class: timm class whose instances belong to the family.
        modules: timm modules whose entrypoints build the family.
        default_gamma: SimPool's gamma when ``create_model`` is not given one (paper section 4.4).
        build_kwargs: timm kwargs for a model that gets a simpool pool.
        slot_path: attribute path of the pool slot in the model.
        classifier_path: attribute path of the classifier.
        reset_pool_arg: ``global_pool`` to hand timm's own ``reset_classifier`` before re-installing.
        init_pool: initialisation for a freshly built pool, as the family initialises its layers.
    """

    name: str
    model_class: type
    modules: tuple[str, ...]
    default_gamma: float | None  # None: decided by the built model (default_gamma_of)
    slot_path: str
    classifier_path: str
    build_kwargs: dict = field(default_factory=dict)
    reset_pool_arg: str | None = None
    init_pool: Callable[[nn.Module], None] | None = None
    patch_layout: bool = False  # pools see tokens of a patch grid (ViT) rather than a map
    generic: bool = False  # the generic wiring (generic.py) rather than an official one

    def matches(self, model: nn.Module) -> bool:
        if self.generic:
            return type(model).__module__ in self.modules
        return isinstance(model, self.model_class) and not _is_excluded(model)


def _is_excluded(model: nn.Module) -> bool:
    # DeiT distilled subclasses VisionTransformer but classifies from two tokens: the generic wiring.
    return type(model).__name__ == "VisionTransformerDistilled"


def _init_vit_pool(pool: nn.Module) -> None:
    # The official fork built SimPool inside the ViT, so its Linear layers got the ViT init
    # (truncated normal, std 0.02); a pool added after construction would keep PyTorch's default.
    for module in pool.modules():
        init_weights_vit_timm(module)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            name="resnet",
            model_class=ResNet,
            modules=("timm.models.resnet",),
            default_gamma=2.0,
            slot_path="global_pool",
            classifier_path="fc",
            reset_pool_arg="avg",  # timm's ResNet rebuilds its pool from this string
        ),
        Family(
            name="convnext",
            model_class=ConvNeXt,
            modules=("timm.models.convnext",),
            default_gamma=2.0,
            slot_path="head.global_pool",
            classifier_path="head.fc",
        ),
        Family(
            name="vit",
            model_class=VisionTransformer,
            modules=("timm.models.vision_transformer", "timm.models.deit"),
            default_gamma=1.25,
            slot_path="attn_pool",
            classifier_path="head",
            # no CLS token and no position-embedding slot for it; final norm kept before the pool
            build_kwargs={"class_token": False, "global_pool": "avg", "fc_norm": False},
            init_pool=_init_vit_pool,
            patch_layout=True,
        ),
    )
}


# Families that cannot take a simpool pool, with the reason (found by benchmarks/family_sweep.py).
UNSUPPORTED: dict[str, str] = {
    "coat": "forward_features returns a list of CLS-prefixed token sequences (or, for CoaT-Lite, a CLS token "
    "timm does not count in num_prefix_tokens): not one feature tensor with known prefix tokens",
    "crossvit": "forward_features returns a list of two token sequences (two patch sizes), not one feature tensor",
    "efficientvim": "forward_features returns the maps of several stages (a list), classified jointly by one "
    "head per stage: not one feature tensor",
    "pit": "forward_features returns only the class tokens (the patch tokens are dropped): features are not spatial",
}

# timm kwargs tried first for a generic family: a ViT-like model without its CLS token (and without
# a position-embedding slot for it), averaging in timm's head; models without the option keep it.
GENERIC_BUILD_KWARGS = {"class_token": False, "global_pool": "avg"}


def supported() -> str:
    return "see `simpool families` (simpool.list_families()); the paper's wirings: " + ", ".join(
        f"{f.name} ({f.model_class.__name__})" for f in FAMILIES.values()
    )


def short_name(module: str) -> str:
    """``timm.models.swin_transformer`` -> ``swin_transformer``."""
    return module.rpartition(".")[2]


def _models_by_family() -> dict[str, list[str]]:
    """Every ``timm.list_models()`` name under its family (the module of ``timm.models`` that defines it)."""
    import timm

    models: dict[str, list[str]] = {}
    for name in timm.list_models():
        models.setdefault(short_name(timm.models.model_entrypoint(name).__module__), []).append(name)
    return dict(sorted(models.items()))


def all_families() -> list[str]:
    """Every family of ``timm.list_models()``: the modules of ``timm.models`` that define models."""
    return list(_models_by_family())


def list_families() -> dict[str, list[str]]:
    """The timm families whose models take a simpool pool, each with the model names a user can pass.

    Keys are families (modules of ``timm.models``: ``resnet``, ``efficientnet``, ``vision_transformer``...), values
    the names ``create_model``/``timm.create_model`` take (``resnet50``, ``efficientnet_b0``...), sorted.
    ``simpool families`` prints them; ``docs/families.md`` has the sweep that checks one model of each family.
    """
    return {family: models for family, models in _models_by_family().items() if family not in UNSUPPORTED}


def generic_family(module: str, classifier: str = "") -> Family:
    """The generic wiring for the family of timm module ``module``, or ``ValueError`` with the reason."""
    name = short_name(module)
    if name in UNSUPPORTED:
        raise ValueError(f"timm family {name!r} is not supported: {UNSUPPORTED[name]}; {supported()}")
    return Family(
        name=name,
        model_class=nn.Module,
        modules=(module,),
        default_gamma=None,
        slot_path="feature_pool",
        classifier_path=classifier,
        build_kwargs=GENERIC_BUILD_KWARGS,
        generic=True,
    )


def default_gamma_of(model: nn.Module) -> float:
    """SimPool's gamma for a generic model (paper section 4.4): 1.25 for transformers, 2 for CNNs.

    A transformer is a model with prefix tokens or self-attention modules (class names with "Attention").
    """
    if getattr(model, "num_prefix_tokens", None) is not None:
        return 1.25
    return 1.25 if any("Attention" in type(m).__name__ for m in model.modules()) else 2.0


def init_generic_pool(model: nn.Module, pool: nn.Module) -> None:
    """Transformers initialise their Linear layers as timm's ViT does (truncated normal, std 0.02)."""
    if default_gamma_of(model) == 1.25:
        _init_vit_pool(pool)


def family_of(model: nn.Module) -> Family:
    """The family of a built timm model; ``ValueError`` for an unsupported one."""
    for family in FAMILIES.values():
        if family.matches(model):
            return family
    cfg = getattr(model, "pretrained_cfg", None)
    classifier = cfg.get("classifier", "") if isinstance(cfg, dict) else ""
    return generic_family(type(model).__module__, _first(classifier))


def family_of_name(model_name: str) -> Family:
    """The family of a timm model name, from the module that defines its entrypoint."""
    import timm

    if not timm.is_model(model_name):
        raise ValueError(f"unknown timm model {model_name!r}")
    module = timm.models.model_entrypoint(model_name).__module__
    cfg = timm.get_pretrained_cfg(model_name, allow_unregistered=True)
    classifier = cfg.classifier if cfg is not None else ""
    several_heads = isinstance(classifier, (tuple, list))  # distilled: two classifiers, the generic wiring
    for family in FAMILIES.values():
        if module in family.modules and not several_heads:
            return family
    return generic_family(module, _first(classifier))


def _first(classifier) -> str:
    return classifier[0] if isinstance(classifier, (tuple, list)) else (classifier or "")


def get_path(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def set_path(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    owner = model.get_submodule(parent)
    if getattr(owner, name, None) is None:  # an empty slot, as a ViT's attn_pool = None
        setattr(owner, name, module)
    else:
        model.set_submodule(path, module)


def install(family: Family, model: nn.Module, pool: nn.Module) -> PoolSlot:
    """Put ``pool`` in the family's slot, with the norms and flattening its head needs."""
    keepdim = family.name == "convnext" and isinstance(model.head, NormMlpClassifierHead)
    slot = PoolSlot(pool, keepdim=keepdim)
    set_path(model, family.slot_path, slot)
    num_vectors = getattr(pool, "num_vectors", 1)
    if keepdim and num_vectors > 1:
        model.head.flatten = VectorFlatten()  # (B, C, k, 1) -> (B, k, C) after the head's LayerNorm2d
    if family.name == "vit":
        dim = model.embed_dim
        like = next(model.parameters())
        if isinstance(model.norm, nn.Identity):  # an avg-pool ViT normalises after pooling only
            model.norm = nn.LayerNorm(dim, eps=1e-6, device=like.device, dtype=like.dtype)
        if isinstance(model.fc_norm, nn.Identity):  # the LayerNorm between pool and classifier
            model.fc_norm = nn.LayerNorm(dim, eps=1e-6, device=like.device, dtype=like.dtype)
    return slot
