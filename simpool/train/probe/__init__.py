"""Probing frozen backbones: every head that trains on a frozen model's features, in one package.

Read it top to bottom:

- :mod:`.config`: ``simpool probe``'s typed config (backbone, data, loop, the grid) and its one-line checks;
- :mod:`.grid`: the frozen backbone, the heads (``pool -> BatchNorm -> Linear``, or a plain linear head), the
  grid of heads x learning rates fed by one backbone forward, its loss and its accuracy;
- :mod:`.optim`: one param group per head x lr (AdamW, LARS, SGD);
- :mod:`.data`: the held-out split, the keyed rows and the token cache;
- :mod:`.run`: :class:`~.run.ProbeRecipe`, ``simpool probe``'s protocol, and :func:`~.run.probe`;
- :mod:`.attention`: each head's attention on the test images with boxes, scored beside the image-independent
  baselines (uniform, centre, the training split's box prior, each head's mean map);
- :mod:`.report`: what a trained grid scores (the tables, the selection, the attention scores); the figures are
  drawn from it by :mod:`simpool.visualize.probe`;
- :mod:`.linear`: the linear-probe protocol (DINO's ``eval_linear.py``) on the same grid;
- :mod:`.segmentation`: the linear segmentation probe (iBOT's ADE20K protocol).
"""
