"""Probing frozen backbones: every head that trains on a frozen model's features, in one package.

Read it top to bottom:

- :mod:`.config`: ``simpool probe``'s typed config (backbone, data, loop, the grid) and its one-line checks;
- :mod:`.grid`: the frozen backbone (the last N blocks or chosen ones: mean, concat, AIM's avg), the heads
  (``pool -> BatchNorm -> Linear``, ``<pool>_all`` over the CLS token too, or a plain linear head), the grid of
  heads x options x learning rates x weight decays fed by one backbone forward, its loss and its accuracy;
- :mod:`.optim`: one param group per entry of the grid (AdamW, LARS, SGD);
- :mod:`.data`: the held-out split, the test sets (the IN-9 variants), the keyed rows and the token cache;
- :mod:`.run`: :class:`~.run.ProbeRecipe`, ``simpool probe``'s protocol, and :func:`~.run.probe`;
- :mod:`.attention`: each head's attention on the test images with boxes, scored beside the image-independent
  baselines (uniform, centre, the training split's box prior, each head's mean map);
- :mod:`.report`: what a trained grid scores (the tables, the selection per head, the test sets and BG-gap, the
  k-NN row, the attention scores); the figures are drawn from it by :mod:`simpool.visualize.probe` and
  :mod:`simpool.visualize.robustness`;
- :mod:`.fewshot`: the grid trained again on k images per class, mean +- std over seeded tries;
- :mod:`.saved`: each selected head as one safetensors file with its config (:func:`~.saved.load_head`);
- :mod:`.linear`: the linear-probe protocol (DINO's ``eval_linear.py``) on the same grid;
- :mod:`.segmentation`: the linear segmentation probe (iBOT's ADE20K protocol).
"""
