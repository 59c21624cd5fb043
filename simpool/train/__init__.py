"""Training: the one loop (:class:`~simpool.train.engine.Engine`), what a training is to it
(:class:`~simpool.train.recipe.Recipe`), and how a run starts (:func:`~simpool.train.launch.launch`).

The recipes live in their packages: ``simpool.train.supervised``, ``simpool.train.dino``, ``simpool.train.probe``.
"""

from .engine import Engine
from .launch import launch
from .recipe import Loop, Parts, Recipe
from .schedule import Schedule

__all__ = ["Engine", "Loop", "Parts", "Recipe", "Schedule", "launch"]
