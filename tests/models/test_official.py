"""Official SimPool checkpoints load into our models and reproduce the official forward passes.

Each reference model below is written from the description of the official code (its SimPool module, its
wiring in the DINO and timm forks and its checkpoint formats: docs/checkpoints.md, "The official code"),
with the official parameter names, randomised,
saved as the official saver does, loaded with ``load_checkpoint`` and compared on random inputs.
"""

from __future__ import annotations

import argparse
import math

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from simpool.models import load_checkpoint
from simpool.models.layouts import convert_state_dict
from simpool.models.official import build_official, create_official_model, list_official
from tests.conftest import TINY_CONVNEXT, TINY_VIT

VIT = {**TINY_VIT, "depth": 2}  # the tiny ViT with two blocks, as the references below

torch.set_num_threads(1)


class OfficialSimPool(nn.Module):
    """The official ``sp.py`` as described: raw GAP query, ``LN`` keys and values, one global min."""

    def __init__(self, dim, gamma=None, use_beta=False):
        super().__init__()
        self.norm_patches = nn.LayerNorm(dim, eps=1e-6)
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.gamma = gamma
        if gamma is not None and use_beta:  # beta exists only with gamma
            self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        if x.ndim == 4:
            gap = x.mean([-2, -1])[:, None]  # (B, 1, d)
            x = x.flatten(2).transpose(1, 2)  # (B, N, d)
        else:
            gap = x.mean(-2, keepdim=True)  # (B, 1, d)
        kv = self.norm_patches(x)
        attn = torch.softmax(self.wq(gap) @ self.wk(kv).transpose(1, 2) * x.shape[-1] ** -0.5, dim=-1)  # (B, 1, N)
        if self.gamma is None:
            out = attn @ kv
        else:
            out = (attn @ (kv - kv.min() + 1e-6) ** self.gamma) ** (1 / self.gamma)  # min over the whole batch
            if hasattr(self, "beta"):
                out = out + self.beta
        return out[:, 0]  # (B, d)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (norm affines, beta, BN statistics included), so no key can be skipped."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=g)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=g))
            elif tensor.ndim == 1 and name.endswith("weight"):
                tensor.copy_(1 + 0.1 * noise)
            else:
                scale = 1 / math.sqrt(max(tensor[0].numel(), 1)) if tensor.ndim > 1 else 0.1
                tensor.copy_(noise * scale)
    return model.eval()


def holder(pool: nn.Module) -> nn.Module:
    module = nn.Module()
    module.pool = pool
    return module


# ------------------------------------------------------------------ supervised (timm fork) references
def sup_vit(gamma, use_beta):
    vit = timm.models.vision_transformer.VisionTransformer(
        **VIT, num_classes=5, class_token=False, global_pool="avg", fc_norm=False
    )
    vit.gp = holder(OfficialSimPool(32, gamma, use_beta))
    forward = lambda x: vit.head(vit.gp.pool(vit.forward_features(x)))  # norm -> SimPool -> head  # noqa: E731
    ours = dict(**VIT, num_classes=5)
    return randomize(vit), forward, ("vit_small_patch16_224", "vit_supervised", ours), (3, 3, 32, 32)


def sup_resnet(gamma, use_beta):
    net = timm.models.resnet.ResNet(block=timm.models.resnet.BasicBlock, layers=[1, 1, 1, 1], num_classes=5)
    net.global_pool = holder(OfficialSimPool(512, gamma, use_beta))
    forward = lambda x: net.fc(net.global_pool.pool(net.forward_features(x)))  # noqa: E731
    return randomize(net), forward, ("resnet18", "default", dict(layers=[1, 1, 1, 1], num_classes=5)), (3, 3, 64, 64)


CONVNEXT = TINY_CONVNEXT


def sup_convnext(gamma, use_beta):
    net = timm.models.convnext.ConvNeXt(num_classes=5, **CONVNEXT)
    net.head.global_pool = holder(OfficialSimPool(32, gamma, use_beta))

    def forward(x):  # stages -> SimPool -> head.norm -> head.fc
        pooled = net.head.global_pool.pool(net.forward_features(x))  # (B, C)
        return net.head.fc(net.head.norm(pooled[..., None, None]).flatten(1))

    return randomize(net), forward, ("convnext_tiny", "default", dict(num_classes=5, **CONVNEXT)), (3, 3, 64, 64)


# ------------------------------------------------------------------ DINO fork references
class DinoBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.attn.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5).softmax(-1)  # (B, h, N, N)
        x = x + self.attn.proj((a @ v).transpose(1, 2).reshape(B, N, C))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class DinoViT(nn.Module):
    """The DINO fork's ViT in simpool mode: no CLS token; blocks -> SimPool -> norm."""

    def __init__(self, gamma, use_beta, dim=32, patch=8, img=32):
        super().__init__()
        self.patch = patch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2, dim))
        self.blocks = nn.ModuleList([DinoBlock(dim, 2), DinoBlock(dim, 2)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.simpool = OfficialSimPool(dim, gamma, use_beta)

    def forward(self, img):
        _, _, w, h = img.shape
        x = self.patch_embed.proj(img).flatten(2).transpose(1, 2)  # (B, N, D)
        N, D = self.pos_embed.shape[1:]
        # the fork compares N - 1 tokens with N embeddings, so it always resamples: scale (w/p + 0.1)/sqrt(N)
        s = int(math.sqrt(N))
        grid = self.pos_embed.reshape(1, s, s, D).permute(0, 3, 1, 2)
        scale = ((w // self.patch + 0.1) / math.sqrt(N), (h // self.patch + 0.1) / math.sqrt(N))
        x = x + F.interpolate(grid, scale_factor=scale, mode="bicubic").permute(0, 2, 3, 1).reshape(1, -1, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(self.simpool(x))


def dino_vit(gamma, use_beta):
    ref = randomize(DinoViT(gamma, use_beta))
    ours = dict(**VIT, num_classes=0)
    return ref, ref, ("vit_small_patch16_224", "vit_dino", ours), (3, 3, 32, 32)


def dino_resnet(gamma, use_beta):
    net = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
    net.fc = nn.Identity()  # DINO's MultiCropWrapper drops the classifier
    net.simpool = OfficialSimPool(512, gamma, use_beta)
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    forward = lambda x: net.simpool(trunk(x))  # layer4 -> SimPool  # noqa: E731
    return randomize(net), forward, ("resnet18", "default", dict(layers=[1, 1, 1, 1], num_classes=0)), (3, 3, 64, 64)


class ChannelsFirstLN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))

    def forward(self, x):  # LayerNorm over C of (B, C, H, W), eps 1e-6
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - u) / torch.sqrt(s + 1e-6) + self.bias[:, None, None]


class FBBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class FBConvNeXt(nn.Module):
    """The DINO fork's (Facebook) ConvNeXt in simpool mode: stages -> SimPool -> norm."""

    def __init__(self, gamma, use_beta, dims=(8, 16, 24, 32)):
        super().__init__()
        self.downsample_layers = nn.ModuleList([nn.Sequential(nn.Conv2d(3, dims[0], 4, 4), ChannelsFirstLN(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(ChannelsFirstLN(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, 2))
            )
        self.stages = nn.ModuleList([nn.Sequential(FBBlock(d)) for d in dims])
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.simpool = OfficialSimPool(dims[-1], gamma, use_beta)

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))
        return self.norm(self.simpool(x))


def dino_convnext(gamma, use_beta):
    ref = randomize(FBConvNeXt(gamma, use_beta))
    return ref, ref, ("convnext_tiny", "default", dict(num_classes=0, **CONVNEXT)), (3, 3, 64, 64)


def dino_checkpoint(state: dict) -> dict:
    """What the DINO fork saves: student (DDP) and teacher wrappers with a projection head, and args."""
    head = {"head.mlp.0.weight": torch.randn(4, 4), "head.last_layer.weight_g": torch.ones(4, 1)}
    teacher = {**{"backbone." + k: v for k, v in state.items()}, **head}
    student = {"module." + k: v.clone() for k, v in teacher.items()}
    return {"teacher": teacher, "student": student, "epoch": 100, "args": argparse.Namespace(arch="x", gamma=2.0)}


def timm_checkpoint(state: dict) -> dict:
    """What timm's CheckpointSaver writes (with EMA weights and the training args)."""
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    return {"epoch": 99, "arch": "x", "state_dict": state, "state_dict_ema": ema, "version": 2,
            "args": argparse.Namespace(gp="simpool", gamma=1.25), "metric": 70.0}  # fmt: skip


PRERELEASE = {"simpool.norm_patches.": "norm_patches.", "simpool.wq.": "attn.wq.", "simpool.wk.": "attn.wk.",
              "simpool.beta": "attn.beta", "norm.": "norm_output."}  # fmt: skip


def to_prerelease(state: dict) -> dict:
    """Our reading of the pre-release names: the inverse of the remaps in the fork's utils.py history."""
    out = {}
    for name, value in state.items():
        for new, old in PRERELEASE.items():
            if name.startswith(new):
                name = old + name[len(new) :]
                break
        out[name] = value
    return out


SETUPS = {
    "sup_vit": (sup_vit, timm_checkpoint, 1.25),
    "sup_vit_no_gamma": (sup_vit, timm_checkpoint, None),
    "sup_resnet": (sup_resnet, timm_checkpoint, 2.0),
    "sup_convnext": (sup_convnext, timm_checkpoint, 2.0),
    "dino_vit": (dino_vit, dino_checkpoint, 1.25),
    "dino_vit_no_gamma": (dino_vit, dino_checkpoint, None),
    "dino_resnet": (dino_resnet, dino_checkpoint, 2.0),
    "dino_convnext": (dino_convnext, dino_checkpoint, 2.0),
    "prerelease_vit": (dino_vit, lambda s: dino_checkpoint(to_prerelease(s)), 1.25),
    "prerelease_resnet": (dino_resnet, lambda s: dino_checkpoint(to_prerelease(s)), 2.0),
    "prerelease_convnext": (dino_convnext, lambda s: dino_checkpoint(to_prerelease(s)), 2.0),
}
EXPECTED_LAYOUT = {"sup": "timm_fork", "dino": "dino", "prerelease": "prerelease"}


@pytest.mark.parametrize("setup", sorted(SETUPS))
def test_official_layout_reproduces_forward(setup, tmp_path):
    builder, saver, gamma = SETUPS[setup]
    use_beta = setup.startswith(("sup_vit", "dino_vit", "prerelease_vit"))  # beta on the ViTs, when gamma is set
    ref, forward, (model_name, wiring, kwargs), shape = builder(gamma, use_beta)
    path = tmp_path / "official.pth"
    torch.save(saver(ref.state_dict()), path)
    ours = build_official(model_name, wiring, gamma, use_beta and gamma is not None, **kwargs).eval()
    report = load_checkpoint(ours, path)
    assert report["layout"] == EXPECTED_LAYOUT[setup.split("_")[0]]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), forward(x), rtol=1e-4, atol=1e-5)


def test_dino_vit_needs_its_pos_embed_resampling(tmp_path):
    # Without the fork's always-on bicubic resampling the same weights give other outputs.
    ref, forward, (model_name, wiring, kwargs), shape = dino_vit(1.25, True)
    ours = build_official(model_name, wiring, 1.25, True, **kwargs).eval()
    state, _, _ = convert_state_dict(ref.state_dict())
    ours.load_state_dict(state)
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = forward(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-4, atol=1e-5)
        del ours._pos_embed  # back to timm's plain addition
        assert not torch.allclose(ours(x), expected, atol=1e-4)


def test_supervised_ema_weights_on_request(tmp_path):
    ref, forward, (model_name, wiring, kwargs), shape = sup_resnet(2.0, False)
    path = tmp_path / "sup.pth.tar"
    torch.save(timm_checkpoint(ref.state_dict()), path)
    ours = build_official(model_name, wiring, 2.0, False, **kwargs).eval()
    load_checkpoint(ours, path, key="state_dict_ema")
    assert torch.equal(ours.fc.weight, ref.fc.weight + 1)  # the EMA copy, not the live weights


def test_dino_student_on_request_teacher_by_default(tmp_path):
    ref, _, (model_name, wiring, kwargs), _ = dino_resnet(2.0, False)
    checkpoint = dino_checkpoint(ref.state_dict())
    checkpoint["student"] = {k: v + 1 if v.is_floating_point() else v for k, v in checkpoint["student"].items()}
    torch.save(checkpoint, tmp_path / "dino.pth")
    ours = build_official(model_name, wiring, 2.0, False, **kwargs)
    load_checkpoint(ours, tmp_path / "dino.pth")
    assert torch.equal(ours.conv1.weight, ref.conv1.weight)
    load_checkpoint(ours, tmp_path / "dino.pth", key="student")
    assert torch.equal(ours.conv1.weight, ref.conv1.weight + 1)


def test_aux_bn_ignored_with_a_notice(tmp_path):
    ref, _, (model_name, wiring, kwargs), _ = sup_resnet(2.0, False)
    state = dict(ref.state_dict(), **{"layer1.0.bn1.aux_bn.0.weight": torch.ones(64)})
    torch.save({"state_dict": state}, tmp_path / "split_bn.pth.tar")
    ours = build_official(model_name, wiring, 2.0, False, **kwargs)
    with pytest.warns(UserWarning, match="aux_bn"):
        report = load_checkpoint(ours, tmp_path / "split_bn.pth.tar")
    assert report["unexpected"] == [] and "aux_bn" in report["notices"][0]


def test_beta_without_gamma_is_ignored_as_the_official_code_does(tmp_path):
    # The DINO ViT teacher of a no-gamma run may carry a beta; the official SimPool never applies it without gamma.
    ref, forward, (model_name, wiring, kwargs), shape = dino_vit(None, False)
    state = dict(ref.state_dict(), **{"simpool.beta": torch.ones(1)})
    torch.save(dino_checkpoint(state), tmp_path / "dino.pth")
    ours = build_official(model_name, wiring, None, False, **kwargs).eval()
    with pytest.warns(UserWarning, match="beta"):
        load_checkpoint(ours, tmp_path / "dino.pth")
    x = torch.randn(*shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), forward(x), rtol=1e-4, atol=1e-5)


def test_unexpected_beta_is_named_with_a_hint(tmp_path):
    ref, _, (model_name, wiring, kwargs), _ = sup_vit(1.25, True)
    torch.save(timm_checkpoint(ref.state_dict()), tmp_path / "beta.pth.tar")
    ours = build_official(model_name, wiring, 1.25, False, **kwargs)
    with pytest.raises(ValueError, match=r"unexpected \['attn_pool.pool.beta'\].*use_beta=True"):
        load_checkpoint(ours, tmp_path / "beta.pth.tar")


def test_official_wiring_survives_reset_classifier():
    model = build_official("vit_small_patch16_224", "vit_supervised", 1.25, **sup_vit(1.25, False)[2][2])
    model.reset_classifier(3)
    assert isinstance(model.fc_norm, nn.Identity) and isinstance(model.norm, nn.LayerNorm)
    model = build_official("vit_small_patch16_224", "vit_dino", 1.25, True, **dino_vit(1.25, True)[2][2])
    model.reset_classifier(3)
    assert isinstance(model.norm, nn.Identity) and isinstance(model.fc_norm, nn.LayerNorm)
    assert model.head.out_features == 3


def test_presets_listed_and_unknown_preset_named():
    assert {"vit_small_supervised", "vit_small_dino", "resnet50_supervised", "resnet50_dino"} <= set(list_official())
    with pytest.raises(ValueError, match="unknown official preset 'vit_huge'.*vit_small_dino"):
        create_official_model("vit_huge")


@pytest.mark.slow  # a 224-px ViT-S built twice
def test_create_official_model_follows_the_checkpoint_beta(tmp_path):
    # A ViT-S supervised file with a trained beta (the released "..._beta.pth.tar") gets a beta.
    model = create_official_model("vit_small_supervised")
    state = {k.replace("attn_pool.pool.norm.", "gp.pool.norm_patches."): v for k, v in model.state_dict().items()}
    state = {k.replace("attn_pool.pool.q.", "gp.pool.wq.").replace("attn_pool.pool.k.", "gp.pool.wk."): v
             for k, v in state.items()}  # fmt: skip
    state["gp.pool.beta"] = torch.full((1,), 0.5)
    torch.save({"state_dict": state}, tmp_path / "vits_beta.pth.tar")
    loaded = create_official_model("vit_small_supervised", checkpoint=tmp_path / "vits_beta.pth.tar")
    assert loaded.attn_pool.pool.beta.item() == 0.5
    assert loaded.attn_pool.pool.min_over == "batch" and loaded.attn_pool.pool.gamma == 1.25
