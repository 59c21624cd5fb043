"""Group 3 of Table 1: feature re-weighting modules placed at the end of the network, then GAP (Appendix B.4).

SE, CBAM and Gather-Excite are blocks inside an architecture; as pools they re-weight ``X`` and
average it: ``z = pi_A(diag(q) X diag(a))``. Their spatial weights ``a`` (uniform for SE) are
returned as the attention, normalised to sum to 1 over locations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import make_divisible
from torch import nn

from .assignment import normalize_locations
from .base import Pool, as_tokens, attention_layout, grid_of, uniform_attention
from .framework import Components
from .grid import as_map
from .registry import register_alias, register_pool


class ChannelMLP(nn.Sequential):
    """The excitation MLP of SE: ``Linear(d, d/r) -> ReLU -> Linear(d/r, d)`` (B26)."""

    def __init__(self, dim: int, hidden: int, bias: bool = True):
        super().__init__(nn.Linear(dim, hidden, bias=bias), nn.ReLU(inplace=True), nn.Linear(hidden, dim, bias=bias))


@register_pool("se")
class SqueezeExcitation(Pool):
    """Squeeze-and-excitation (Hu et al., CVPR 2018) then GAP: ``z = diag(sigma(MLP(pi_A(X)))) X 1_p / p`` (B25)-(B28).

    Because ``pi_A(diag(q) X) = q * pi_A(X)``, the re-weighted map is never formed. The spatial
    attention is uniform.

    Args:
        dim: channels.
        rd_ratio: bottleneck ratio ``1/r`` (1/16 as timm's ``SEModule``), rounded to a multiple of 8.
    """

    components = Components(
        "SE", 3, u0="πA(X)", phi_q="σ(MLP(U))", attention="1p/p", phi_v="diag(q)X", source="Hu et al., CVPR 2018"
    )

    def __init__(self, dim: int, rd_ratio: float = 1 / 16):
        super().__init__()
        self.out_features = dim
        self.fc = ChannelMLP(dim, make_divisible(dim * rd_ratio, 8, round_limit=0.0))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, _ = as_tokens(x)
        u0 = tokens.mean(dim=1)  # pi_A(X): (B, C)                       (B25)
        gate = self.fc(u0).sigmoid()  # q: (B, C)                          (B26)
        pooled = gate * u0  # pi_A(diag(q) X): (B, C)                      (B28)
        return (pooled, attention_layout(uniform_attention(x), grid_of(x))) if return_attention else pooled


@register_pool("cbam")
class CBAM(Pool):
    """CBAM (Woo et al., ECCV 2018) then GAP: channel attention, then spatial attention, then average (B29)-(B35).

    ``q = sigma(MLP(pi_A(X)) + MLP(pi_max(X)))``, ``V = diag(q) X``,
    ``a = sigma(conv7([pi_A(V^T) pi_max(V^T)]))``, ``z = V a / p``. The 7x7 convolution has no
    BatchNorm (so batches of one 1x1 map train). Tokens are laid on a square grid when they fill one.

    ``cbam`` is the paper's CBAM, as the SimPool paper compares it (Appendix C.2). efficient-probing's ``cbam`` head
    (timm's CBAM block as a pool, ``CbamPooling``) is the alias ``cbam_ep``: ``mlp_bias=False, rd_divisor=1,
    spatial_norm=True, residual=True``, ``z = pi_A(ReLU(V a + X))``, a BatchNorm after a bias-free 7x7 convolution;
    :meth:`load_reference_state_dict` loads its weights.

    Args:
        dim: channels.
        rd_ratio: bottleneck ratio of the channel MLP (1/16).
        kernel_size: spatial convolution size (7, Appendix C.2).
        mlp_bias: biases in the channel MLP.
        rd_divisor: the bottleneck width is rounded to a multiple of this (timm's ``make_divisible``).
        spatial_norm: a BatchNorm after the spatial convolution (which then has no bias), as timm's CBAM.
        residual: pool ``ReLU(V a + X)`` rather than ``V a``, as efficient-probing's head.
    """

    components = Components(
        "CBAM",
        3,
        u0="πA(X)",
        phi_q="σ(MLP(U))",
        phi_k="X",
        similarity="x⊤y",
        attention="σ(conv7(S))",
        phi_v="diag(q)X",
        source="Woo et al., ECCV 2018",
    )

    def __init__(
        self,
        dim: int,
        rd_ratio: float = 1 / 16,
        kernel_size: int = 7,
        mlp_bias: bool = True,
        rd_divisor: int = 8,
        spatial_norm: bool = False,
        residual: bool = False,
    ):
        super().__init__()
        self.out_features, self.residual = dim, residual
        hidden = make_divisible(dim * rd_ratio, rd_divisor, round_limit=0.0)
        self.fc = ChannelMLP(dim, hidden, bias=mlp_bias)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=not spatial_norm)
        self.norm = nn.BatchNorm2d(1) if spatial_norm else nn.Identity()

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        fmap, _ = as_map(x)  # (B, C, H, W)
        B, C, H, W = fmap.shape  # batch, channels, height, width
        gate = (self.fc(fmap.mean(dim=(2, 3))) + self.fc(fmap.amax(dim=(2, 3)))).sigmoid()  # q: (B, C)   (B30)
        values = fmap * gate[:, :, None, None]  # V = diag(q) X: (B, C, H, W)                        (B31)
        summary = torch.stack([values.mean(dim=1), values.amax(dim=1)], dim=1)  # S: (B, 2, H, W)      (B32)
        spatial = self.norm(self.conv(summary)).sigmoid()  # a: (B, 1, H, W)                           (B33)
        weighted = values * spatial  # (B, C, H, W)
        if self.residual:
            weighted = F.relu(weighted + fmap)  # (B, C, H, W)
        pooled = weighted.mean(dim=(2, 3))  # V a / p: (B, C)                                          (B35)
        if return_attention:
            attention = normalize_locations(spatial.flatten(1)).unsqueeze(1)  # (B, 1, N)
            return pooled, attention_layout(attention, grid_of(x))
        return pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load efficient-probing's ``CbamPooling`` strictly (built ``mlp_bias=False, rd_divisor=1,
        spatial_norm=True, residual=True``): its 1x1 convolutions become the MLP's Linear layers."""
        renames = {
            "channel.fc1.": "fc.0.",
            "channel.fc2.": "fc.2.",
            "spatial.conv.conv.": "conv.",
            "spatial.conv.bn.": "norm.",
        }
        ours = {}
        for key, value in state_dict.items():
            prefix = next((old for old in renames if key.startswith(old)), None)
            name = key if prefix is None else renames[prefix] + key.removeprefix(prefix)
            ours[name] = value.flatten(1) if name.startswith("fc.") and value.ndim == 4 else value  # (o, i, 1, 1)
        self.load_state_dict(ours)


# efficient-probing's cbam head (CbamPooling(channels=dim, spatial_kernel_size=7)); "cbam" stays the paper's
register_alias("cbam_ep", "cbam", mlp_bias=False, rd_divisor=1, spatial_norm=True, residual=True)


@register_pool("ge")
class GatherExcite(Pool):
    """Gather-Excite (Hu et al., NeurIPS 2018) then GAP: ``z = pi_A(X * sigma(MLP(gather_e(X))))``.

    ``gather_e`` averages over the extent ``e`` (``e = 0``: the whole map, GE-theta-minus with an
    MLP as timm's ``GatherExcite`` default, which the paper followed (Appendix C.2); ``e > 0``: a
    ``(2e-1)``-sized window with stride ``e``, the gate resized back to the map). Ours because timm's
    ``GatherExcite`` raises ``TypeError`` at construction with ``use_mlp=True`` in timm 1.0.21-1.0.31
    (``*dd`` instead of ``**dd`` in its constructor).

    Args:
        dim: channels.
        extent: gather extent ``e`` (0 global, else even).
        rd_ratio: bottleneck ratio of the MLP (1/16, timm's default).
    """

    components = Components(
        "GE",
        3,
        u0="gather(X)",
        phi_q="σ(MLP(U))",
        attention="σ(MLP(gather(X)))",
        phi_v="X ∘ gate",
        source="Hu et al., NeurIPS 2018",
    )

    def __init__(self, dim: int, extent: int = 0, rd_ratio: float = 1 / 16):
        super().__init__()
        if extent < 0 or extent % 2:
            raise ValueError(f"Gather-Excite extent must be 0 (global) or even, got {extent}")
        self.out_features, self.extent = dim, extent
        hidden = make_divisible(dim * rd_ratio, 1, round_limit=0.0)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim, 1))

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        fmap, _ = as_map(x)  # (B, C, H, W)
        if self.extent == 0:
            gathered = fmap.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        else:
            size = 2 * self.extent - 1
            gathered = F.avg_pool2d(fmap, size, stride=self.extent, padding=size // 2, count_include_pad=False)
        gate = self.mlp(gathered).sigmoid()  # (B, C, h, w)
        if gate.shape[-2:] != fmap.shape[-2:]:
            gate = F.interpolate(gate, size=fmap.shape[-2:])  # (B, C, H, W)
        pooled = (fmap * gate).mean(dim=(2, 3))  # (B, C)
        if return_attention:
            weights = gate.mean(dim=1).flatten(1).expand(fmap.shape[0], fmap.shape[2] * fmap.shape[3])  # (B, N)
            return pooled, attention_layout(normalize_locations(weights).unsqueeze(1), grid_of(x))
        return pooled
