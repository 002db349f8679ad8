"""What the built-in pizza generator can draw: topping names and image sides, with no imports.

The config checks an experiment's labels and ``data.image_size`` against these before any work, and
the generator (:mod:`doughflow.data.synthetic.pizza`, which paints one style per name here) takes its
settings from the config. With this table in the generator the two imported each other; as a leaf
of plain constants, the config imports it and nothing else of the project.
"""

from __future__ import annotations

# Every topping the generator has a painter for (tests/unit/data/synthetic checks the two agree).
DRAWABLE_TOPPINGS: tuple[str, ...] = ("pepperoni", "mushroom", "olive", "basil", "pepper", "onion", "pineapple", "ham")

# The built-in experiment's label map, and the menu of its historical photos.
DEFAULT_TOPPINGS: tuple[str, ...] = ("pepperoni", "mushroom", "olive", "basil", "pepper")

# Sides in pixels the generator draws at. The layout is made for 64 px and scaled: at 32 px a topping
# is 3-5 px across, below that toppings blur into specks no count can be checked on. A pizza took
# 3.4 ms to draw at 64 px, 64 ms at 512 and 315 ms at 1024 (one core): above 512 the 6.4k-row default
# set would take over half an hour to draw.
MIN_IMAGE_SIDE = 32
MAX_IMAGE_SIDE = 512
