"""Menu eras of the built-in set: adding a label draws one launch batch and leaves the rest alone."""

import pyarrow.parquet as pq
import pytest

from doughflow.config import ConfigError, PizzaGeneratorConfig, load_config
from doughflow.data.sources.builtin import draw_builtin_source, era_dir, missing_label_defaults
from doughflow.data.synthetic.pizza import MenuEra, PizzaGenerator, menu_history

BASE = ["pepperoni", "olive"]
SMALL = dict(num_images=20, new_recipe_images=15, rows_per_shard=50, corrupt_rows=0, num_customers=5)


def test_each_label_beyond_the_base_menu_is_an_era_with_the_menu_of_its_time():
    config = PizzaGeneratorConfig(base_menu=BASE, **SMALL)
    eras = menu_history(config, ["olive", "onion", "pepperoni", "ham"])
    assert eras == [MenuEra(("pepperoni", "olive")), MenuEra(("pepperoni", "olive", "onion"), "onion"),
                    MenuEra(("pepperoni", "olive", "onion", "ham"), "ham")]
    assert menu_history(PizzaGeneratorConfig(base_menu=None, **SMALL), ["olive", "onion"]) == [MenuEra(("olive", "onion"))]
    assert missing_label_defaults(config, ["olive", "onion", "pepperoni", "ham"]) == {"onion": 0.0, "ham": 0.0}


def test_a_launch_batch_has_its_own_ids_images_and_features_its_topping():
    config = PizzaGeneratorConfig(base_menu=BASE, **SMALL)
    base = list(PizzaGenerator(config, BASE).rows())
    launch = list(PizzaGenerator(config, BASE + ["onion"], featured="onion").rows())
    assert len({r["sample_id"] for r in base} | {r["sample_id"] for r in launch}) == len(base) + len(launch)
    assert all(r["sample_id"].startswith("pz-onion-") for r in launch)
    assert not {r["image"] for r in base} & {r["image"] for r in launch}
    assert sum(r["count_onion"] > 0 for r in launch) > len(launch) // 3
    assert launch == list(PizzaGenerator(config, BASE + ["onion"], featured="onion").rows())  # deterministic
    with pytest.raises(ValueError, match="not on the menu"):
        PizzaGenerator(config, BASE, featured="onion")


def test_adding_a_label_reuses_the_drawn_eras(tmp_path):
    config = PizzaGeneratorConfig(base_menu=BASE, **SMALL)
    first = draw_builtin_source(config, BASE, tmp_path)
    assert first == era_dir(config, MenuEra(tuple(BASE)), tmp_path)
    stamp = {p: p.stat().st_mtime_ns for p in first.glob("*.parquet")}
    view = draw_builtin_source(config, BASE + ["onion"], tmp_path)
    assert {p: p.stat().st_mtime_ns for p in first.glob("*.parquet")} == stamp
    assert sorted(p.name for p in view.iterdir() if p.is_dir()) == ["base", "onion"]
    assert "count_onion" not in pq.read_schema(next((view / "base").glob("*.parquet"))).names
    assert "count_onion" in pq.read_schema(next((view / "onion").glob("*.parquet"))).names
    assert draw_builtin_source(config, BASE + ["onion"], tmp_path) == view
    bigger = PizzaGeneratorConfig(base_menu=BASE, **{**SMALL, "new_recipe_images": 30})
    assert era_dir(bigger, MenuEra(tuple(BASE)), tmp_path) == first  # launch size does not touch the base


def test_config_rejects_undrawable_menus_and_unknown_label_defaults():
    with pytest.raises(ConfigError, match="anchovy"):
        load_config(None, ["data.source.generator.base_menu=[pepperoni,anchovy]"])
    with pytest.raises(ConfigError, match="label_defaults"):
        load_config(None, ["data.label_defaults={onion: 0}"])
