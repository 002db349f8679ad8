"""What the built-in pizza generator can draw: topping names, with no imports.

The config checks an experiment's labels against these before any work, and the generator
(:mod:`doughflow.data.synthetic.pizza`, which paints one style per name here) takes its settings
from the config. With this table in the generator the two imported each other; as a leaf of plain
constants, the config imports it and nothing else of the project.
"""

from __future__ import annotations

# Every topping the generator has a painter for (tests/unit/data/synthetic checks the two agree).
DRAWABLE_TOPPINGS: tuple[str, ...] = ("pepperoni", "mushroom", "olive", "basil", "pepper", "onion", "pineapple", "ham")

# The built-in experiment's label map, and the menu of its historical photos.
DEFAULT_TOPPINGS: tuple[str, ...] = ("pepperoni", "mushroom", "olive", "basil", "pepper")
