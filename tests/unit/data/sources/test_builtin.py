"""Menu eras of the built-in set: adding a label draws one launch batch and leaves the rest alone."""

import pyarrow.parquet as pq
import pytest

from doughflow.config import ConfigError, DataConfig, PizzaGeneratorConfig, load_config
from doughflow.data.imagecodec import decode_image
from doughflow.data.sources.builtin import draw_builtin_source, era_dir, missing_label_defaults
from doughflow.data.synthetic.pizza import MenuEra, PizzaGenerator, menu_history

BASE = ["pepperoni", "olive"]
SMALL = dict(num_images=20, new_recipe_images=15, corrupt_rows=0, num_customers=5)


def small_data(data_fields: dict | None = None, **generator) -> DataConfig:
    """The data section of a tiny built-in source (50-row shards unless ``data_fields`` say otherwise)."""
    return DataConfig(
        **{"rows_per_shard": 50, **(data_fields or {})},
        source={"generator": PizzaGeneratorConfig(base_menu=BASE, **{**SMALL, **generator})},
    )


def test_each_label_beyond_the_base_menu_is_an_era_with_the_menu_of_its_time():
    config = PizzaGeneratorConfig(base_menu=BASE, **SMALL)
    eras = menu_history(config, ["olive", "onion", "pepperoni", "ham"])
    assert eras == [
        MenuEra(("pepperoni", "olive")),
        MenuEra(("pepperoni", "olive", "onion"), "onion"),
        MenuEra(("pepperoni", "olive", "onion", "ham"), "ham"),
    ]
    assert menu_history(PizzaGeneratorConfig(base_menu=None, **SMALL), ["olive", "onion"]) == [
        MenuEra(("olive", "onion"))
    ]
    assert missing_label_defaults(config, ["olive", "onion", "pepperoni", "ham"]) == {"onion": 0.0, "ham": 0.0}


def test_a_launch_batch_has_its_own_ids_images_and_features_its_topping():
    config = PizzaGeneratorConfig(base_menu=BASE, **SMALL)
    base = list(PizzaGenerator(config, BASE, image_size=64).rows())
    launch = list(PizzaGenerator(config, BASE + ["onion"], featured="onion", image_size=64).rows())
    assert len({r["sample_id"] for r in base} | {r["sample_id"] for r in launch}) == len(base) + len(launch)
    assert all(r["sample_id"].startswith("pz-onion-") for r in launch)
    assert not {r["image"] for r in base} & {r["image"] for r in launch}
    assert sum(r["count_onion"] > 0 for r in launch) > len(launch) // 3
    assert launch == list(
        PizzaGenerator(config, BASE + ["onion"], featured="onion", image_size=64).rows()
    )  # deterministic
    with pytest.raises(ValueError, match="not on the menu"):
        PizzaGenerator(config, BASE, featured="onion", image_size=64)


def test_adding_a_label_reuses_the_drawn_eras(tmp_path):
    data = small_data()
    first = draw_builtin_source(data, BASE, tmp_path)
    assert first == era_dir(data, MenuEra(tuple(BASE)), tmp_path)
    stamp = {p: p.stat().st_mtime_ns for p in first.glob("*.parquet")}
    view = draw_builtin_source(data, BASE + ["onion"], tmp_path)
    assert {p: p.stat().st_mtime_ns for p in first.glob("*.parquet")} == stamp
    assert sorted(p.name for p in view.iterdir() if p.is_dir()) == ["base", "onion"]
    assert "count_onion" not in pq.read_schema(next((view / "base").glob("*.parquet"))).names
    assert "count_onion" in pq.read_schema(next((view / "onion").glob("*.parquet"))).names
    assert draw_builtin_source(data, BASE + ["onion"], tmp_path) == view
    assert (
        era_dir(small_data(new_recipe_images=30), MenuEra(tuple(BASE)), tmp_path) == first
    )  # launch size does not touch the base


def test_the_source_is_drawn_at_the_data_image_and_shard_size(tmp_path):
    data = small_data({"image_size": 32, "rows_per_shard": 10})
    folder = draw_builtin_source(data, BASE, tmp_path)
    sizes = [pq.read_metadata(p).num_rows for p in sorted(folder.glob("*.parquet"))]
    assert len(sizes) >= 2 and all(n == 10 for n in sizes[:-1]) and 0 < sizes[-1] <= 10
    images = pq.read_table(folder, columns=["image"]).column("image").to_pylist()
    assert {decode_image(image).shape for image in images} == {(32, 32, 3)}
    base = MenuEra(tuple(BASE))
    folders = {era_dir(d, base, tmp_path) for d in (small_data(), data, small_data({"image_size": 32}))}
    assert len(folders) == 3  # the image size and the shard size shape the bytes: each has its own folder
    assert era_dir(small_data({"max_count": 5}), base, tmp_path) == era_dir(small_data(), base, tmp_path)


def test_config_rejects_undrawable_menus_sizes_and_unknown_label_defaults():
    with pytest.raises(ConfigError, match="anchovy"):
        load_config(None, ["data.source.generator.base_menu=[pepperoni,anchovy]"])
    with pytest.raises(ConfigError, match="label_defaults"):
        load_config(None, ["data.label_defaults={onion: 0}"])
    for size in (16, 1024):
        with pytest.raises(ConfigError, match=f"data: .*image_size {size}: the built-in generator draws 32..512"):
            load_config(None, [f"data.image_size={size}"])
        assert load_config(None, [f"data.image_size={size}", "data.source.url=data/photos"]).data.image_size == size
