"""The built-in pizza source on disk: each menu era drawn once into a shared folder, and one view
folder per label list that links the eras it needs.

Why eras: a team that adds a topping has years of photos without it and a fresh batch with it.
Drawing the base era from ``base_menu`` alone (not from ``labels``) means adding a label draws only
the launch batch of the new topping and reuses every earlier era byte for byte. The older eras
carry no column for a topping launched after them; their photos cannot show it, so fetch fills
that column with 0 (``missing_label_defaults``) and counts the filled rows in its manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from doughflow.config import DataConfig, PizzaGeneratorConfig
from doughflow.data.synthetic.pizza import MenuEra, generate_pizza_dataset, menu_history
from doughflow.paths import remove_tree

log = logging.getLogger(__name__)

DONE = "_SUCCESS"
LAYOUT_VERSION = 2


def _key(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def era_dir(data: DataConfig, era: MenuEra, datasets_dir: Path) -> Path:
    """Keyed by everything that shapes the era's bytes and nothing else: the generator's settings,
    the image size and the shard size; the base era ignores ``base_menu`` bookkeeping and
    ``new_recipe_images``, so adding a launch never redraws it."""
    generator = data.source.generator
    spec = generator.model_dump(mode="json", exclude={"base_menu", "new_recipe_images"})
    spec.update(
        menu=list(era.menu),
        featured=era.featured,
        version=LAYOUT_VERSION,
        image_size=data.image_size,
        rows_per_shard=data.rows_per_shard,
    )
    if era.featured is not None:
        spec["new_recipe_images"] = generator.new_recipe_images
    return datasets_dir / f"pizza-{era.name}-{_key(spec)}"


def publish_once(folder: Path, build: Callable[[Path], None]) -> bool:
    """Build ``folder`` in a private temporary folder and publish it with one rename: a killed run
    leaves no half folder behind and two runs building at once never share files. True if built."""
    if (folder / DONE).exists():
        return False
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    build(tmp)
    (tmp / DONE).write_text("ok\n")
    try:
        tmp.rename(folder)
    except OSError:  # another run published the same folder first: keep theirs
        remove_tree(folder.parent, tmp)
    return True


def _link_tree(source: Path, target: Path) -> None:
    """Hard links where the filesystem allows (no bytes copied), copies where it does not."""
    target.mkdir(parents=True, exist_ok=True)
    for shard in sorted(source.glob("*.parquet")):
        try:
            os.link(shard, target / shard.name)
        except OSError:
            shutil.copy2(shard, target / shard.name)


def draw_builtin_source(data: DataConfig, labels: list[str], datasets_dir: Path) -> Path:
    """The folder fetch reads for ``labels``: the single era's folder, or a view of all eras. The
    generator draws at ``data.image_size`` in shards of ``data.rows_per_shard`` rows."""
    eras = menu_history(data.source.generator, labels)
    folders = []
    for era in eras:
        folder = era_dir(data, era, datasets_dir)

        def draw(tmp: Path, era: MenuEra = era) -> None:
            generate_pizza_dataset(
                data.source.generator,
                list(era.menu),
                tmp,
                image_size=data.image_size,
                rows_per_shard=data.rows_per_shard,
                progress=True,
                featured=era.featured,
            )

        drew = publish_once(folder, draw)
        log.info("%s pizza era %r (menu %s) in %s", "drew" if drew else "reused", era.name, list(era.menu), folder)
        folders.append(folder)
    if len(folders) == 1:
        return folders[0]
    view = datasets_dir / f"pizza-view-{_key({'eras': [f.name for f in folders]})}"

    def build(tmp: Path) -> None:
        for era, folder in zip(eras, folders):
            _link_tree(folder, tmp / era.name)

    publish_once(view, build)
    return view


def missing_label_defaults(config: PizzaGeneratorConfig, labels: list[str]) -> dict[str, float]:
    """Labels an earlier era cannot show: 0 wherever that era's shards lack the column."""
    base = set(config.base_menu) if config.base_menu is not None else set(labels)
    return {label: 0.0 for label in labels if label not in base}
