"""Reference recipes, one module per output dataset (`trainer/recipes/<card>.py`), found by name.

A recipe names its output card (`card`), the columns it reads, the collate spec, and
builds the model (`build`), the loss (`loss`) and held-out evaluation (`evaluate`).
"""

from datasets_cards.registry import Registry, modules_in

RECIPES: Registry = Registry("recipe", builtins=modules_in("trainer.recipes"))

__all__ = ["RECIPES"]
