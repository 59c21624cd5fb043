"""Group 4 of Table 1: the pooling stream of vision transformers, a learnable CLS token (Appendix B.5).

Both pools are blocks of cross-attention of a learnable CLS token ``u`` over the features ``X``,
placed at the end of the network:

    a_i = sigma_2(K_i^T q_i / sqrt(d'))          (B45)   per head i, K = g_m(W_K LN(X)), q = g_m(W_Q LN(u))
    z_i = V_i a_i                                (B46)   V = g_m(W_V LN(X))
    g   = u + W_U g_m^{-1}(z)                    (B47)
    u'  = g + MLP(LN(g))                         (B48)

``vit``: one such block (a ViT block seen from its CLS token: with one block, the patch stream
cannot affect the CLS output, so self-attention over ``[u; X]`` reduces to this cross-attention,
except that ``u`` also attends to itself; here it attends to the features only, as in Table 1).
``cait``: CaiT's class-attention block, whose keys and values include the CLS token, with LayerScale.
Both end with ``LN`` (``u = LN(u^T)``). Attention is ``(B, m, H, W)``: one map per head.
"""

from __future__ import annotations

import torch
from timm.layers import LayerScale, Mlp, trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn

from .base import Pool, as_tokens, attention_layout, uniform_attention
from .framework import Components
from .registry import register_pool


def class_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, num_heads: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head cross-attention of one query over tokens, (B45)-(B46): ``z_i = V_i sigma_2(K_i^T q_i / sqrt(d'))``.

    Args:
        query: ``(B, C)``.
        keys, values: ``(B, N, C)``.
        num_heads: ``m``; each head uses ``d' = C / m`` channels.

    Returns:
        ``(pooled, attention)``: ``(B, C)`` (heads concatenated, ``g_m^{-1}``) and ``(B, m, N)``.
    """
    B, N, C = keys.shape  # batch, locations, channels
    m, D = num_heads, C // num_heads  # heads, channels per head
    q = query.view(B, m, 1, D)  # (B, m, 1, D)
    k = keys.view(B, N, m, D).transpose(1, 2)  # (B, m, N, D)
    v = values.view(B, N, m, D).transpose(1, 2)  # (B, m, N, D)
    attention = (q @ k.transpose(-1, -2) * D**-0.5).softmax(dim=-1)  # (B, m, 1, N)      (B45)
    pooled = (attention @ v).reshape(B, C)  # (B, m, 1, D) -> (B, C)                       (B46)
    return pooled, attention[:, :, 0]


class ClassAttentionPool(Pool):
    """A learnable CLS token pooling the features by ``depth`` cross-attention blocks (B45)-(B48).

    Args:
        dim: channels.
        num_heads: ``m`` (4 in Appendix C.2).
        depth: blocks ``T``, each with its own parameters.
        mlp_ratio: MLP hidden width relative to ``dim``.
        qkv_bias: biases on ``W_Q``, ``W_K``, ``W_V``.
        include_cls: keys and values include the CLS token (CaiT) or only the features (ViT, Table 1).
        init_values: LayerScale initial value (CaiT), None for none (ViT).
        norm_eps: epsilon of the final LayerNorm.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        depth: int = 1,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        include_cls: bool = False,
        init_values: float | None = None,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        if num_heads < 1 or dim % num_heads or depth < 1:
            raise ValueError(f"dim={dim} must be a multiple of num_heads={num_heads}, depth={depth} >= 1")
        self.out_features, self.num_heads, self.include_cls = dim, num_heads, include_cls
        self.cls_token = nn.Parameter(torch.zeros(1, dim))
        trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(_ClassAttentionBlock(dim, mlp_ratio, qkv_bias, init_values) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, _ = as_tokens(x)
        B, N, C = tokens.shape  # batch, locations, channels
        u = self.cls_token.expand(B, C)  # u^0: (B, C)
        for block in self.blocks:
            u, attention = block(u, tokens, self.num_heads, self.include_cls)
        pooled = self.norm(u)  # u = LN(u^T): (B, C)
        if return_attention:
            if self.include_cls:  # drop the CLS key and renormalise over the locations
                attention = attention[..., 1:] / attention[..., 1:].sum(-1, keepdim=True).clamp_min(1e-12)
            return pooled, attention_layout(attention, tuple(x.shape[-2:]) if x.ndim == 4 else None)
        return pooled


class _ClassAttentionBlock(nn.Module):
    """``g = u + W_U z``, ``u' = g + MLP(LN(g))`` with ``z`` the class attention of ``LN(u)`` over ``LN(X)``."""

    def __init__(self, dim: int, mlp_ratio: float, qkv_bias: bool, init_values: float | None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, u: torch.Tensor, tokens: torch.Tensor, num_heads: int, include_cls: bool):
        cls = self.norm1(u)  # (B, C)
        context = self.norm1(tokens)  # (B, N, C)
        if include_cls:
            context = torch.cat([cls.unsqueeze(1), context], dim=1)  # (B, 1 + N, C)
        z, attention = class_attention(self.q(cls), self.k(context), self.v(context), num_heads)  # (B, C)
        g = u + self.ls1(self.proj(z))  # (B47)
        return g + self.ls2(self.mlp(self.norm2(g))), attention  # (B48)


@register_pool("vit")
class ViTPool(ClassAttentionPool):
    """ViT's CLS pooling (Dosovitskiy et al., ICLR 2021) as one block at the end: 4 heads, MLP (B45)-(B48).

    See :class:`ClassAttentionPool` for the arguments; keys are the features only.
    """

    components = Components(
        "ViT",
        4,
        iterative=True,
        u0="U",
        phi_q="g_m(WQ U)",
        phi_k="g_m(WK X)",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="g_m(WV X)",
        phi_x="MLP(MSA(X))",
        phi_u="MLP(g_m⁻¹(Z))",
        source="Dosovitskiy et al., ICLR 2021",
    )

    def __init__(self, dim: int, num_heads: int = 4, depth: int = 1, mlp_ratio: float = 4.0, qkv_bias: bool = True):
        super().__init__(dim, num_heads, depth, mlp_ratio, qkv_bias, include_cls=False, init_values=None)


@register_pool("cait")
class CaiTPool(ClassAttentionPool):
    """CaiT class attention (Touvron et al., ICCV 2021): 4 heads, T = 1, LayerScale 1e-5, keys ``[u; X]``.

    The returned attention drops the CLS key and is renormalised over the locations. The final LayerNorm has
    PyTorch's epsilon 1e-5, as the ``CAPooling`` of the official SimPool code and of efficient-probing (``cait``),
    whose state dict :meth:`load_reference_state_dict` loads.
    """

    components = Components(
        "CaiT",
        4,
        iterative=True,
        u0="U",
        phi_q="g_m(WQ U)",
        phi_k="g_m(WK X)",
        similarity="x⊤y",
        attention="σ2(S_i/√d), i=1..m",
        phi_v="g_m(WV X)",
        phi_x="X",
        phi_u="MLP(g_m⁻¹(Z))",
        source="Touvron et al., ICCV 2021",
    )

    def __init__(
        self,
        dim: int,
        num_heads: int = 4,
        depth: int = 1,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        init_values: float = 1e-5,
        norm_eps: float = 1e-5,
    ):
        super().__init__(
            dim, num_heads, depth, mlp_ratio, qkv_bias, include_cls=True, init_values=init_values, norm_eps=norm_eps
        )

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load efficient-probing's ``CAPooling`` strictly: ``blocks_token_only.i.attn.q -> blocks.i.q``,
        ``gamma_1 -> ls1.gamma``, ``gamma_2 -> ls2.gamma``, ``cls_token`` ``(1, 1, C) -> (1, C)``."""
        renames = (("blocks_token_only.", "blocks."), (".attn.", "."), (".gamma_1", ".ls1.gamma"))
        ours = {}
        for key, value in state_dict.items():
            for old, new in (*renames, (".gamma_2", ".ls2.gamma")):
                key = key.replace(old, new)
            ours[key] = value.reshape(1, -1) if key == "cls_token" else value  # (1, 1, C) -> (1, C)
        self.load_state_dict(ours)


@register_pool("dinovit")
class DinoViTPool(Pool):
    """One DINOv2 ViT block over the features, then their mean (efficient-probing's ``dinovit``).

    ``u = pi_A(X + MSA(LN(X)) + MLP(LN(X + MSA(LN(X)))))``: timm's ViT ``Block`` (PyTorch's LayerNorm, no qkv
    bias, no LayerScale), as DINOv2's ``Block`` builds it by default; its state dict (``dino_block.``) loads.
    Every token is updated alike, so the pooled attention over locations is uniform, as GAP's.

    Args:
        dim: ``C``.
        num_heads: ``h`` (8, the reference's).
        mlp_ratio: MLP hidden width relative to ``dim``.
        qkv_bias: biases on the query, key and value projections.
    """

    components = Components(
        "DINO ViT block",
        4,
        u0="πA(X')",
        phi_x="MLP(MSA(X))",
        attention="1p/p",
        source="Oquab et al., TMLR 2024",
    )

    def __init__(self, dim: int, num_heads: int = 8, mlp_ratio: float = 4.0, qkv_bias: bool = False):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide dim={dim}")
        self.out_features = dim
        self.block = Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, norm_layer=nn.LayerNorm)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        tokens, grid = as_tokens(x)  # (B, N, C)
        pooled = self.block(tokens).mean(dim=1)  # (B, C)
        return (pooled, attention_layout(uniform_attention(x), grid)) if return_attention else pooled

    def load_reference_state_dict(self, state_dict: dict) -> None:
        """Load ``DinoViTBlockPooling`` weights strictly (``dino_block. -> block.``)."""
        self.load_state_dict({key.replace("dino_block.", "block.", 1): value for key, value in state_dict.items()})


__all__ = ["CaiTPool", "ClassAttentionPool", "DinoViTPool", "ViTPool", "class_attention"]
