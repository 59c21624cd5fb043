"""Where the final pooling of each supported timm family sits, and how a simpool pool goes there.

The wiring is the official code's (reference ``OFFICIAL_CODE.md`` section 2):
ResNet: last stage -> pool -> classifier; ConvNeXt: stages -> pool -> head norm -> classifier;
ViT: blocks -> final norm -> pool over the patch tokens -> LayerNorm -> classifier.
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
    default_gamma: float
    slot_path: str
    classifier_path: str
    build_kwargs: dict = field(default_factory=dict)
    reset_pool_arg: str | None = None
    init_pool: Callable[[nn.Module], None] | None = None
    patch_layout: bool = False  # pools see tokens of a patch grid (ViT) rather than a map

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, self.model_class) and not _is_excluded(model)


def _is_excluded(model: nn.Module) -> bool:
    # DeiT distilled subclasses VisionTransformer but classifies from two tokens: not supported.
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


def supported() -> str:
    return ", ".join(f"{f.name} ({f.model_class.__name__})" for f in FAMILIES.values())


def family_of(model: nn.Module) -> Family:
    """The family of a built timm model, or ``ValueError`` naming the supported ones."""
    for family in FAMILIES.values():
        if family.matches(model):
            return family
    raise ValueError(f"{type(model).__name__} is not supported; supported families: {supported()}")


def family_of_name(model_name: str) -> Family:
    """The family of a timm model name, from the module that defines its entrypoint."""
    import timm

    if not timm.is_model(model_name):
        raise ValueError(f"unknown timm model {model_name!r}")
    module = timm.models.model_entrypoint(model_name).__module__
    for family in FAMILIES.values():
        if module in family.modules:
            return family
    raise ValueError(f"{model_name!r} (from {module}) is not supported; supported families: {supported()}")


def get_path(model: nn.Module, path: str) -> nn.Module:
    for name in path.split("."):
        model = getattr(model, name)
    return model


def set_path(model: nn.Module, path: str, module: nn.Module) -> None:
    *parents, last = path.split(".")
    for name in parents:
        model = getattr(model, name)
    setattr(model, last, module)


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
