"""The rows of Table 10 (SimPool ablations, ResNet-18 on ImageNet-20%) as ``framework`` pool options.

``create_pool("framework", dim, **TABLE_10[row])`` (or ``create_model(..., pool="framework",
pool_kwargs=TABLE_10[row])``) builds the row's variant. Left half: design, with ``f = f_alpha``
(``gamma = 2`` for CNNs); right half: linear and LayerNorm layers on query, key and value with
``f = f_-1`` (average). The paper's sentence "iterations with shared parameters at every iteration
(LAYERS) or not (ITER)" is followed literally: LAYERS shares one set of mappings, ITER has one per
iteration.
"""

from __future__ import annotations

_LEFT = dict(gamma=2.0)
_RIGHT = dict(gamma=None)

TABLE_10: dict[str, dict] = {
    "simpool": {**_LEFT},
    "h=multihead-m4": {**_LEFT, "num_heads": 4},
    "h=sigmoid": {**_LEFT, "attention": "sigmoid"},
    "layers-3": {**_LEFT, "iterations": 3, "share_parameters": True},
    "layers-5": {**_LEFT, "iterations": 5, "share_parameters": True},
    "iter-3": {**_LEFT, "iterations": 3, "share_parameters": False},
    "iter-5": {**_LEFT, "iterations": 5, "share_parameters": False},
    "u0=learnable": {**_LEFT, "init": "learnable"},
    "u0=diag": {**_LEFT, "init": "norm"},
    "s=neg-sqdist": {**_LEFT, "similarity": "neg_sqdist"},
    "s=cosine": {**_LEFT, "similarity": "cosine"},
    "k2-max": {**_LEFT, "num_vectors": 2, "init": "kmeans", "combine": "max"},
    "k5-max": {**_LEFT, "num_vectors": 5, "init": "kmeans", "combine": "max"},
    "k2-concat": {**_LEFT, "num_vectors": 2, "init": "kmeans", "combine": "concat"},
    "k5-concat": {**_LEFT, "num_vectors": 5, "init": "kmeans", "combine": "concat"},
    "wq=wk": {**_LEFT, "share_qk": True},
}
# right half: every combination of linear layers and LayerNorms that the table lists
for _linear in ("qkv", "qk", "q", "k", ""):
    for _norm in ("qkv", "kv", "k", "v", ""):
        TABLE_10[f"linear={_linear or '-'},ln={_norm or '-'}"] = {**_RIGHT, "linear": _linear, "norm": _norm}
