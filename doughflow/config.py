"""The one place where an experiment's configuration is defined.

An experiment is one YAML file parsed into :class:`ExperimentConfig`. The same model is the
Prefect flow's parameter, so the Prefect UI renders it as a form with these descriptions and
defaults. Every model forbids unknown keys so that a typo fails before any work starts, naming
the field, instead of being silently ignored; a key that was removed or renamed fails naming what
replaced it (``RETIRED_KEYS``).

This module is a leaf: it imports nothing of the project but the generator's table of drawable
toppings, so every module can take a typed config without an import circle. What it can check on its
own it checks here (types, ranges, cross-field rules, search-space paths, toppings the built-in
generator can draw); what needs the rest of the library (the dataset adapter ``data.adapter`` names)
is checked by :func:`doughflow.experiment.check_experiment`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

if TYPE_CHECKING:
    import yaml
else:
    try:
        import yaml
    except ImportError:  # the GPU throughput benchmark runs with torch + deepspeed only; YAML needs PyYAML
        yaml = None
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from doughflow.toppings import DEFAULT_TOPPINGS, DRAWABLE_TOPPINGS, MAX_IMAGE_SIDE, MIN_IMAGE_SIDE

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "pizza.yaml"


class ConfigError(ValueError):
    """Raised for any configuration problem; the message names the file and the field."""


# A label as the data has it: a class name ("cat", "3 door", "crème") or a class number (0..9).
Label = StrictStr | StrictInt
MAX_LABEL_CHARS = 200
_PLAIN_LABEL = re.compile(r"[A-Za-z0-9_]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def label_name(label: str | int) -> str:
    """A label's text: how class values in the data are matched (an integer class column's 3 is
    the label 3 or "3") and how reports show it."""
    return str(label)


def label_key(label: str | int) -> str:
    """A label as part of a column name: the label itself when it is up to 64 letters, digits and _
    (so count_pepperoni stays count_pepperoni), else those characters plus 8 hex digits of its hash,
    so labels that clean to the same characters still differ ("a b" -> a_b_7faae47c while "a_b" stays
    a_b); check_labels refuses the rare pair that would still share a key."""
    name = label_name(label)
    if _PLAIN_LABEL.fullmatch(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[:48] or "label"
    return f"{cleaned}_{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"


def check_labels(labels: list[str | int]) -> list[str | int]:
    """Non-empty, printable, unique by their text and by their column key; raises ValueError naming the label."""
    names: dict[str, str | int] = {}
    keys: dict[str, str | int] = {}
    for label in labels:
        name = label_name(label)
        if isinstance(label, str):
            if not label.strip():
                raise ValueError(f"label {label!r} is empty")
            if _CONTROL.search(label):
                raise ValueError(f"label {label!r} holds a control character (tab, newline, ...)")
            if len(label) > MAX_LABEL_CHARS:
                raise ValueError(f"label {label[:40]!r}... is longer than {MAX_LABEL_CHARS} characters")
        if name in names:
            raise ValueError(
                f"labels must be unique: {names[name]!r} and {label!r} are the same class (both read {name!r})"
            )
        key = label_key(label)
        if key in keys:
            raise ValueError(f"labels {keys[key]!r} and {label!r} would name the same column ({key!r}): rename one")
        names[name], keys[key] = label, label
    return labels


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # Keys a section no longer has -> the rest of the sentence "<section>.<key> ...", saying what
    # replaced it. Such a key fails with that sentence instead of a bare "unknown field".
    RETIRED_KEYS: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_retired_keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and cls.RETIRED_KEYS:
            retired = {key: why for key, why in cls.RETIRED_KEYS.items() if key in raw}
            if retired:
                raise PydanticCustomError(
                    "retired_key",
                    "{message}",
                    {"message": "; ".join(f"{key} {why}" for key, why in retired.items()), "retired": retired},
                )
        return raw


class PizzaGeneratorConfig(_Strict):
    """The built-in synthetic pizza set: drawn deterministically from the seed, so every machine
    gets the same bytes and the run needs no download. It draws at ``data.image_size`` and writes
    shards of ``data.rows_per_shard`` rows."""

    RETIRED_KEYS = {
        "image_size": "was removed: the generator draws at data.image_size",
        "rows_per_shard": "was removed: the generator writes shards of data.rows_per_shard rows",
        "max_count": "was renamed data.source.generator.max_per_topping (each topping is drawn 0..max_per_topping "
        "times); data.max_count is the count above which a row is quarantined",
    }

    num_images: int = Field(6000, ge=10, le=2_000_000, description="Distinct pizzas to draw (before planted copies).")
    max_per_topping: int = Field(
        3,
        ge=1,
        le=6,
        description="Each topping is drawn 0..max_per_topping times on a pizza (data.max_count is the quarantine bound, not this).",
    )
    num_customers: int = Field(
        400, ge=3, description="Customer ids are drawn from a Zipf-like distribution over this many."
    )
    customer_skew: float = Field(
        1.1, ge=0.0, le=3.0, description="Zipf exponent: larger means a few customers own more orders."
    )
    exact_duplicate_rate: float = Field(
        0.03, ge=0.0, le=0.5, description="Share of extra rows that are byte-identical copies."
    )
    near_duplicate_rate: float = Field(
        0.04, ge=0.0, le=0.5, description="Share of extra rows that are re-encoded, shifted or recoloured copies."
    )
    corrupt_rows: int = Field(
        4, ge=0, description="Rows with undecodable images or impossible labels, to exercise quarantine."
    )
    seed: int = Field(7, description="Generator seed; changes every image.")
    base_menu: list[str] | None = Field(
        default_factory=lambda: list(DEFAULT_TOPPINGS),
        description="Toppings on the menu when the historical photos were taken; the base set is drawn with these alone, so adding a label does not redraw it. Each label beyond them is a new recipe: its own batch of new_recipe_images pizzas is drawn (with the menu of its time) and appended, and older photos count it as 0. Empty: the labels themselves (no menu history).",
    )
    new_recipe_images: int = Field(
        1500,
        ge=10,
        le=2_000_000,
        description="Pizzas drawn for each topping added after base_menu (its recipes are featured in that batch).",
    )


class SourceConfig(_Strict):
    """Where raw data comes from. With no url the built-in pizza generator writes it on first use."""

    url: str | None = Field(
        None,
        description="fsspec URL of a Parquet, CSV or JSONL file, a folder of them, or an image folder (local path, file://, http(s)://, s3://...). Empty: use the built-in generator.",
    )
    format: Literal["auto", "parquet", "csv", "jsonl", "images"] = Field(
        "auto",
        description="Source format; auto decides by file extension (a folder of .png/.jpg files is an image folder).",
    )
    retries: int = Field(
        4, ge=0, le=20, description="Retries of a transient read error per source file, with exponential backoff."
    )
    backoff_seconds: float = Field(0.5, ge=0.0, le=60.0, description="First retry delay; doubles on each retry.")
    labels: str | None = Field(
        None,
        description="Image folders: CSV of labels with a 'path' column (image path relative to the source, or file name); a URL or a path relative to the source. Empty: labels.csv at the source root if present.",
    )
    generator: PizzaGeneratorConfig = Field(default_factory=PizzaGeneratorConfig)


class DaskConfig(_Strict):
    """Where the data stages compute. With no address a LocalCluster of worker processes on the
    loopback interface is started for the stage and closed after it."""

    address: str | None = Field(
        None, description="Scheduler address of an existing Dask cluster (tcp://host:8786). Empty: a LocalCluster."
    )
    n_workers: int = Field(2, ge=1, le=256, description="LocalCluster worker processes.")
    threads_per_worker: int = Field(1, ge=1, le=64, description="Threads per LocalCluster worker.")
    memory_limit: str = Field(
        "1.5GiB", description="Memory limit per LocalCluster worker (Dask spills, then pauses, before it)."
    )
    local_directory: str | None = Field(
        None, description="Spill and shuffle scratch folder; empty: the system temp folder."
    )
    in_process_below_rows: int = Field(
        100_000,
        ge=0,
        description="With no address, a stage over fewer rows runs on an in-process cluster (threads): starting worker processes and moving data between them costs more than such work. 0: always worker processes.",
    )
    shuffle_method: Literal["auto", "tasks", "p2p", "disk"] = Field(
        "auto", description="Dask DataFrame shuffle method; auto lets Dask choose (p2p on a distributed cluster)."
    )
    dashboard_port: int | None = Field(
        8787,
        ge=0,
        le=65535,
        description="LocalCluster: Dask's dashboard on 127.0.0.1 at this port, its link logged when a data stage starts (a taken port is replaced by a free one; 0: any free port); empty: no dashboard. It has no login, so it never listens beyond loopback.",
    )

    def scheduler_address(self) -> str | None:
        """``address``, else DOUGHFLOW_DASK_ADDRESS (the compose stack sets it for its worker). Where the
        data stages compute changes no result, so a machine-wide setting may pick it."""
        return self.address or os.environ.get("DOUGHFLOW_DASK_ADDRESS") or None


class NearDupConfig(_Strict):
    """Near-duplicate removal: MinHash + LSH for text, perceptual hash + Hamming LSH for images. With no
    settings, text gets shingles and a threshold chosen from its measured length (README: Subsampling)."""

    kind: Literal["auto", "none", "image", "text"] = Field(
        "auto",
        description="What the rows are compared on: auto: their text with the text adapter (data.adapter: text), their images otherwise; none disables near-dup.",
    )
    text_column: str | None = Field(
        None,
        description="kind=text: the column compared. Empty: the text adapter's text (data.text_columns, joined), else the column 'text'.",
    )
    threshold: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Text: Jaccard similarity of shingle sets at or above which two rows are near-duplicates. Empty: 0.7 with character shingles, 0.6 with word shingles (where F1 peaked on planted short records and reviews).",
    )
    shingle: Literal["auto", "word", "char"] = Field(
        "auto",
        description="Text shingles: word n-grams or character n-grams. auto: characters when the median text (normalised) has at most short_text_chars characters, words otherwise: one typo changes a third of a short record's word 3-grams.",
    )
    shingle_size: int | None = Field(
        None, ge=1, le=32, description="n of the n-gram shingles; empty: 3 for characters, 2 for words."
    )
    short_text_chars: int = Field(
        100,
        ge=1,
        description="shingle=auto: texts whose median normalised length is at most this many characters get character shingles (they cost one MinHash update per character, ~6x words).",
    )
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations.")
    scheme: Literal["affine32", "legacy"] = Field(
        "affine32", description="datasketch MinHash permutation scheme reproduced bit for bit."
    )
    seed: int = Field(1, description="MinHash seed (datasketch's seed).")
    false_negative_weight: float = Field(
        0.9,
        gt=0.0,
        lt=1.0,
        description="Weight of misses vs false candidates when bands x rows are chosen (datasketch's optimiser); verification removes the false candidates.",
    )
    candidate_margin: float = Field(
        0.1,
        ge=0.0,
        lt=0.5,
        description="Text: LSH bands x rows are chosen for threshold - candidate_margin, so a pair just above the threshold becomes a candidate ~99% of the time instead of 87-92%; verification then applies the threshold itself.",
    )
    verify: Literal["signature", "exact", "none"] = Field(
        "exact",
        description="Check text candidate pairs: exact Jaccard of their shingle sets (re-reads the candidates' texts on the workers), the MinHash estimate (drops ~1 in 3 true pairs within 0.02 above the threshold at 128 permutations), or not at all.",
    )
    levenshtein_max_chars: int = Field(
        0,
        ge=0,
        description="With verify=exact, strings up to this length are compared by rapidfuzz ratio instead of Jaccard.",
    )
    image_hash_size: int = Field(
        22,
        ge=4,
        le=32,
        description="Image hash side: the hash has side*side bits (spectrum: 22 -> 484 bits; phash_centred, dhash: 8 -> 64).",
    )
    max_hamming: int = Field(
        11,
        ge=0,
        le=64,
        description="Images: the hash is split into max_hamming+1 blocks and rows sharing a whole block are candidates, so every pair within max_hamming bits is one (pigeonhole). Spectrum 22/11: blocks of 40 bits, planted copies within 12 of 484 bits, 0.009 chance candidates per row at 1M rows.",
    )
    image_hash: Literal["spectrum", "phash_centred", "dhash"] = Field(
        "spectrum",
        description="Images: spectrum compares pairs of low-frequency DFT magnitudes (unchanged by shifts, balanced bits: scales to millions of rows); phash_centred is pHash of the image moved to its content centroid; dhash is plain dHash. The 64-bit hashes put thousands of distinct pizzas in one block at 1M rows.",
    )
    bucket_pair_limit: int = Field(
        2048,
        ge=2,
        le=100_000,
        description="Images: LSH buckets up to this many rows are searched pair by pair (every pair is a candidate); larger buckets get star edges to their smallest key only.",
    )
    thumb_size: int = Field(
        32,
        ge=8,
        le=256,
        description="Images: side of the grayscale thumbnail candidate pairs are verified on (stored by validation: side*side bytes a row).",
    )
    max_shift: int = Field(
        1,
        ge=0,
        le=16,
        description="Images: verification takes the best correlation over shifts up to this many thumbnail pixels, in half-pixel steps (1 at 32 px covers 2 px of a 64 px image).",
    )
    min_correlation: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="Images: candidates whose best thumbnail correlation (low frequencies, brightness ignored) reaches this are near-duplicates. Planted copies score >= 0.995, distinct pizzas of one recipe and counts <= 0.85.",
    )
    keep_per_component: int = Field(1, ge=1, description="Rows kept per near-duplicate component (lowest ids).")


class ClusterCapConfig(_Strict):
    """Cap over-represented looks: MiniBatchKMeans on each image's central colour histogram (the
    embedding validation stores; text: hashed word counts), at most so many rows per cluster."""

    max_per_cluster: int | None = Field(600, ge=1, description="Rows kept per cluster; empty: no absolute cap.")
    max_over_mean: float | None = Field(
        None,
        gt=1.0,
        description="Rows kept per cluster as a multiple of the mean cluster size (live rows / n_clusters): a cap that means the same at 6k rows and at 1M. With max_per_cluster too, the smaller applies; both empty disables clustering.",
    )
    n_clusters: int = Field(16, ge=2, le=4096)
    sample_rows: int = Field(
        20000, ge=100, description="Rows the k-means is fitted on; the rest are assigned per partition."
    )

    @property
    def enabled(self) -> bool:
        return self.max_per_cluster is not None or self.max_over_mean is not None


class SubsampleConfig(_Strict):
    """Data reduction between validation and splitting; every removed row is recorded with a reason."""

    exact_dedup: bool = Field(True, description="Drop rows whose normalised content equals a row with a lower id.")
    near_dup: NearDupConfig = Field(default_factory=NearDupConfig)
    max_per_id: int | None = Field(
        300, ge=1, description="At most this many rows per id_cap_column value; empty disables."
    )
    id_cap_column: str | None = Field(None, description="Column the per-id cap counts by; empty: data.group_column.")
    cluster: ClusterCapConfig = Field(default_factory=ClusterCapConfig)
    seed: int = Field(29, description="Seed of the hash rank that decides which rows a cap keeps.")
    report_examples: int = Field(6, ge=0, le=100, description="Example pairs and groups shown in the report.")


ImageFormat = Literal["png", "jpeg", "gif", "webp", "bmp", "tiff"]


class DataConfig(_Strict):
    source: SourceConfig = Field(default_factory=SourceConfig)
    image_column: str = Field("image", description="Column with encoded image bytes (PNG/JPEG).")
    id_column: str = Field(
        "sample_id",
        description="Stable unique row id; dedup keeps the lowest. A Parquet/CSV/JSONL file without this column gets one made at fetch: '<file name relative to the source>#<row number, 9 digits>' (image folders: the image path), the same on every rerun of the same files.",
    )
    group_column: str | None = Field(
        "customer_id",
        description="Internal id that must never straddle splits (customer, writer, patient). A source without this column (or empty) has no groups: rows are split by near-duplicate component and the per-id cap counts only subsample.id_cap_column.",
    )
    rows_per_shard: int = Field(
        2000,
        ge=10,
        description="Rows per Parquet shard the built-in generator draws and fetch/validate write; bounds memory per step.",
    )
    subsample: SubsampleConfig = Field(default_factory=SubsampleConfig)
    target_prefix: str = Field("count_", description="Label columns are named prefix + label, e.g. count_olive.")
    max_count: int = Field(20, ge=1, description="Counts above this are impossible: such rows are quarantined.")
    image_size: int = Field(
        64,
        ge=16,
        le=1024,
        description=f"Side of the square images the model sees: sources are resized to it, and the built-in generator draws at it ({MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE} without data.source.url).",
    )
    image_formats: list[ImageFormat] = Field(
        default_factory=lambda: list[ImageFormat](["png", "jpeg"]),
        min_length=1,
        description="Image formats validation accepts, by their magic bytes; others are quarantined naming the format, never decoded.",
    )
    max_image_bytes: int = Field(
        16 * 2**20, ge=1, description="Encoded images larger than this are quarantined before decoding."
    )
    max_image_pixels: int = Field(
        4096 * 4096,
        ge=64,
        description="Images whose header declares more pixels than this are quarantined before decoding (a 656 KB PNG can declare 15000x15000 and cost 643 MiB to decode).",
    )
    label_defaults: dict[str, float] = Field(
        default_factory=dict,
        description="Value of a label's target column in rows whose source file lacks that column, e.g. {onion: 0} when the photos taken before onion was on the menu carry no onion count. A row whose file has the column keeps its own value (a null there is still quarantined); fetch counts the filled rows in its manifest. The built-in generator fills the toppings that were not yet on its menu by itself.",
    )
    extra_sources: list[str] = Field(
        default_factory=list,
        description="More Parquet sources (fsspec URLs) with the same label columns, e.g. corrected counts exported by flows.review; appended to the main source with their origin recorded.",
    )
    adapter: str = Field(
        "pizza_counts",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Registered dataset adapter: which columns are the labels and how a row becomes a target. pizza_counts (count regression, one target_prefix+label column per label), image_classification (one class-name column, label_column), or your own (see import_module).",
    )
    label_column: str | None = Field(
        None,
        description="image_classification and text: the column with each row's class, names or integers (an image folder's top-level folder is the column 'folder'); rows whose class is not in labels are quarantined. Empty: 'label' for image_classification; no labels for text.",
    )
    text_columns: list[str] = Field(
        default_factory=lambda: ["text"],
        min_length=1,
        description="text adapter: the columns that hold each row's text (name, address, city, ...); exact and near-dup compare them joined with spaces.",
    )
    max_text_chars: int = Field(
        100_000,
        ge=1,
        description="text adapter: rows whose joined text is longer than this many characters are quarantined (one such row costs its whole shard's memory in the sketch pass).",
    )
    import_module: str | None = Field(
        None,
        description="Python module imported before the adapter is looked up, so that its @register_adapter classes exist, e.g. my_project.adapters.",
    )

    @model_validator(mode="after")
    def _builtin_generator_can_draw_the_size(self) -> DataConfig:
        if self.source.url is None and not MIN_IMAGE_SIDE <= self.image_size <= MAX_IMAGE_SIDE:
            raise ValueError(
                f"image_size {self.image_size}: the built-in generator draws {MIN_IMAGE_SIDE}.."
                f"{MAX_IMAGE_SIDE} pixels (set source.url to train on other images at this size)"
            )
        return self


class SplitConfig(_Strict):
    train: float = Field(0.7, gt=0.0, lt=1.0, description="Share of groups (customers) in train.")
    val: float = Field(0.15, ge=0.0, lt=1.0, description="Share of groups in validation.")
    test: float = Field(0.15, gt=0.0, lt=1.0, description="Share of groups in test.")
    seed: int = Field(13, description="Seed of the group hash; changing it reshuffles customers.")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:.4f}")
        return self


class ModelConfig(_Strict):
    name: str = Field(
        "density_cnn",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Registered model factory: density_cnn (small CPU counter), resnet (ResNet-style, for GPUs), or your own (see import_module).",
    )
    width: int = Field(24, ge=4, le=512, description="Channels of the first block; later blocks double it.")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for the model factory, e.g. {blocks: [2, 2, 2, 2]} for resnet.",
    )
    import_module: str | None = Field(
        None,
        description="Python module imported before the model is built (in every training process), so that its @register_model factories exist, e.g. my_project.models.",
    )


class AugmentConfig(_Strict):
    """Per-sample augmentations applied in the loader workers; all of them leave the counts unchanged."""

    rot90: bool = Field(True, description="Random multiple of 90 degree rotation.")
    hflip: bool = Field(True, description="Random horizontal flip.")
    vflip: bool = Field(False, description="Random vertical flip.")
    brightness: float = Field(0.0, ge=0.0, le=0.9, description="Random brightness scale in [1 - b, 1 + b]; 0 disables.")


class LoaderConfig(_Strict):
    """The streaming Parquet loader: memory is bounded by shuffle_buffer encoded rows plus one row group per worker."""

    num_workers: int = Field(
        2,
        ge=0,
        le=64,
        description="DataLoader worker processes that read, decode and augment; 0 reads in the training process.",
    )
    shuffle_buffer: int = Field(
        2048, ge=1, description="Rows held per worker for shuffling (encoded bytes, not pixels)."
    )
    piece_rows: int = Field(
        512, ge=1, description="Shards are cut into pieces of this many rows, the unit dealt to ranks and workers."
    )
    prefetch_factor: int = Field(4, ge=1, description="Batches each worker prepares ahead.")
    pin_memory: bool = Field(True, description="Pin batches for asynchronous host-to-GPU copies (GPU only).")
    verify_checksums: bool = Field(
        True, description="Check each shard's sha256 against the split manifest before reading it."
    )
    on_bad_row: Literal["fail", "skip"] = Field(
        "fail",
        description="An undecodable image or non-finite label: fail naming shard, row and id, or skip it with a counted warning.",
    )
    max_bad_rows: int = Field(
        100, ge=0, description="With on_bad_row=skip, fail anyway after this many skipped rows per worker."
    )


class LauncherConfig(_Strict):
    """How many processes train. One runs in the task's process; more run under a launcher subprocess."""

    num_processes: int = Field(
        1, ge=1, le=1024, description="Training processes per node: one per GPU, or several CPU processes (gloo)."
    )
    num_nodes: int = Field(1, ge=1, description="Nodes; more than one needs a hostfile and the deepspeed launcher.")
    hostfile: str | None = Field(None, description="DeepSpeed hostfile ('host slots=N' lines) for multi-node runs.")
    launcher: Literal["auto", "torchrun", "deepspeed"] = Field(
        "auto", description="auto: deepspeed with a hostfile, torchrun otherwise."
    )
    isolate: bool = Field(
        False,
        description="Run even a single process as a subprocess, so a crash cannot take the flow down and a retry resumes.",
    )
    master_addr: str = Field("127.0.0.1", description="Rendezvous address (rank 0's host for multi-node).")
    master_port: int = Field(0, ge=0, le=65535, description="Rendezvous port; 0 picks a free one each run.")
    timeout_minutes: int = Field(
        30, ge=1, description="Collective timeout (DEEPSPEED_TIMEOUT): a stuck peer fails the run instead of hanging."
    )


class EarlyStoppingConfig(_Strict):
    metric: str = Field(
        "val_exact_count_accuracy",
        description="Epoch metric that picks the best checkpoint and drives early stopping (val_mae, val_exact_count_accuracy, train_loss).",
    )
    mode: Literal["max", "min"] = Field("max", description="Whether a larger metric is better.")
    patience: int = Field(0, ge=0, description="Stop after this many epochs without improvement; 0 never stops early.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement.")


class ScalingConfig(_Strict):
    """How the learning rate follows the global batch, so one recipe runs on 1 CPU or 8 GPUs:
    the effective rate is learning_rate x rule(global batch / reference_global_batch)."""

    rule: Literal["none", "linear", "sqrt"] = Field(
        "none",
        description="linear: proportional to the global batch (Goyal et al., for SGD); sqrt: to its square root (the rule for Adam-type optimizers such as our AdamW); none: learning_rate as written, whatever the global batch.",
    )
    reference_global_batch: int | None = Field(
        None, ge=1, description="The global batch learning_rate was chosen for; required by rule linear or sqrt."
    )

    @model_validator(mode="after")
    def _reference_given_for_a_rule(self) -> ScalingConfig:
        if self.rule != "none" and self.reference_global_batch is None:
            raise ValueError(
                f"rule {self.rule} needs reference_global_batch (the global batch learning_rate was chosen for)"
            )
        return self


class MicroBatchSearchConfig(_Strict):
    """How ``micro_batch_size: auto`` picks the micro-batch: the largest that fits in memory, less a headroom."""

    start: int = Field(
        16,
        ge=1,
        le=4096,
        description="GPU: first micro-batch tried with a forward+backward step; doubled while it fits, then bisected (halved if even this one does not fit).",
    )
    limit: int = Field(
        4096,
        ge=1,
        le=4096,
        description="Largest micro-batch considered (also capped so every epoch keeps a whole update per rank).",
    )
    headroom: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of the GPU's memory (or of train.memory_budget_gb on a CPU) left unused, for DeepSpeed's buffers, fragmentation and the loader.",
    )


class TensorBoardMonitorConfig(_Strict):
    """DeepSpeed's ``tensorboard`` monitor, keys as DeepSpeed defines them (needs the tensorboard package)."""

    enabled: bool = Field(
        False,
        description="Write DeepSpeed's events (learning rate per step) and the trainer's (loss, images/s, validation metrics) as TensorBoard event files.",
    )
    output_path: str = Field("", description="Folder of the event files; empty: the run's train/monitor folder.")
    job_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        description="Sub-folder of output_path, one per run; empty: the run id.",
    )


class CsvMonitorConfig(_Strict):
    """DeepSpeed's ``csv_monitor``: one CSV file per event name, rows of (step, value)."""

    enabled: bool = Field(False, description="Write every monitor event to CSV files (step = samples trained on).")
    output_path: str = Field("", description="Folder of the CSV files; empty: the run's train/monitor folder.")
    job_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        description="Sub-folder of output_path, one per run; empty: the run id.",
    )


class WandbMonitorConfig(_Strict):
    """DeepSpeed's ``wandb`` monitor (needs the wandb package and a W&B login or WANDB_API_KEY when training starts)."""

    enabled: bool = Field(False, description="Log every monitor event to Weights & Biases.")
    group: str | None = Field(None, description="W&B group, to put runs side by side.")
    team: str | None = Field(None, description="W&B team (entity); empty: your default entity.")
    project: str = Field("deepspeed", min_length=1, description="W&B project.")


class DeepSpeedMonitorConfig(_Strict):
    """DeepSpeed's own monitors, passed into its config as its ``tensorboard``, ``csv_monitor`` and ``wandb``
    sections. DeepSpeed writes the learning rate at every optimizer step; the trainer adds its loss and
    images/s every train.log_every_steps and the validation metrics every epoch, all at step = samples trained on."""

    tensorboard: TensorBoardMonitorConfig = Field(default_factory=TensorBoardMonitorConfig)
    csv_monitor: CsvMonitorConfig = Field(default_factory=CsvMonitorConfig)
    wandb: WandbMonitorConfig = Field(default_factory=WandbMonitorConfig)

    @property
    def enabled(self) -> bool:
        return self.tensorboard.enabled or self.csv_monitor.enabled or self.wandb.enabled


class DeepSpeedSectionConfig(_Strict):
    """Sections of DeepSpeed's own config that pass through to it unchanged (the rest of its config is
    built from train.*: see the bundle's ds_config.json)."""

    monitor: DeepSpeedMonitorConfig = Field(default_factory=DeepSpeedMonitorConfig)


class TrainConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    epochs: int = Field(10, ge=1, le=1000)
    micro_batch_size: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = Field(
        32,
        description="Per-device batch (DeepSpeed train_micro_batch_size_per_gpu); auto: the largest that fits (GPU: probed, CPU: from train.memory_budget_gb), see train.micro_batch_search.",
    )
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    learning_rate: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    warmup_steps: int = Field(50, ge=0, description="Linear warm-up steps before cosine decay.")
    gradient_clipping: float = Field(1.0, ge=0.0, description="Max gradient norm; 0 disables.")
    zero_stage: int = Field(0, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="fp32 on CPUs; bf16/fp16 use torch autocast on GPUs."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto")
    num_threads: int = Field(
        0,
        ge=0,
        description="torch intra-op threads of each training process; 0: the cores this process may use, divided among the processes a launcher starts on the host. Always set, never inherited: CPU weights are bit-identical only for the same thread count.",
    )
    log_every_steps: int = Field(10, ge=1)
    seed: int = Field(1234)
    lr_schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Shape after the linear warm-up."
    )
    min_lr_ratio: float = Field(0.02, ge=0.0, le=1.0, description="Final learning rate as a share of learning_rate.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    launcher: LauncherConfig = Field(default_factory=LauncherConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    checkpoint_every_steps: int = Field(
        100, ge=0, description="Optimizer steps between checkpoints (plus one per epoch); 0: per epoch only."
    )
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept on disk; older ones are deleted.")
    on_nan_loss: Literal["fail", "skip"] = Field(
        "fail",
        description="A non-finite loss: fail naming epoch, step and samples, or skip that step with a counted warning.",
    )
    max_skipped_steps: int = Field(
        10, ge=0, description="With on_nan_loss=skip, fail anyway after this many skipped steps."
    )
    deterministic: bool = Field(
        False, description="GPU: deterministic cuDNN/cuBLAS kernels (slower). CPU runs are deterministic anyway."
    )
    scaling: ScalingConfig = Field(
        default_factory=ScalingConfig,
        description="Learning-rate scaling with the global batch (micro batch x accumulation x processes).",
    )
    global_batch_size: int | None = Field(
        None,
        ge=1,
        description="Samples per optimizer update over all processes, kept on any hardware: gradient_accumulation_steps is derived from it (and the micro-batch when auto); empty: micro batch x accumulation x processes as written.",
    )
    warmup_samples: int | None = Field(
        None,
        ge=0,
        description="Warm-up in training samples (all processes together); when set it replaces warmup_steps and the whole learning-rate curve becomes a function of samples seen, the same at any global batch.",
    )
    checkpoint_every_samples: int | None = Field(
        None,
        ge=0,
        description="Training samples between checkpoints (plus one per epoch); when set it replaces checkpoint_every_steps; 0: per epoch only.",
    )
    memory_budget_gb: float | None = Field(
        None,
        gt=0.0,
        description="micro_batch_size auto on a CPU: memory per training process for weights, optimizer state and a step's tensors; empty: the memory available at start, shared by this host's processes.",
    )
    micro_batch_search: MicroBatchSearchConfig = Field(default_factory=MicroBatchSearchConfig)

    @field_validator("micro_batch_size", mode="before")
    @classmethod
    def _micro_batch_is_a_size_or_auto(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096):
            return value
        raise ValueError("must be a whole number of samples from 1 to 4096, or 'auto'")

    @model_validator(mode="after")
    def _global_batch_divides(self) -> TrainConfig:
        if self.global_batch_size is None:
            return self
        processes = self.launcher.num_processes * self.launcher.num_nodes
        micro = 1 if self.micro_batch_size == "auto" else self.micro_batch_size
        if self.global_batch_size % (micro * processes):
            raise ValueError(
                f"global_batch_size {self.global_batch_size} is not a whole number of micro batches "
                f"({micro}) on every one of {processes} processes (launcher.num_processes x num_nodes): "
                f"make it a multiple of {micro * processes} or change micro_batch_size"
            )
        return self

    deepspeed: DeepSpeedSectionConfig = Field(default_factory=DeepSpeedSectionConfig)


class EvaluateConfig(_Strict):
    worst_examples: int = Field(12, ge=0, le=200, description="Worst test images shown in the report.")
    min_exact_count_accuracy: float = Field(
        0.95, ge=0.0, le=1.0, description="Fail the run when test exact-count accuracy is below this (0 disables)."
    )
    min_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Release gates on test-split metrics: metric name -> the least value that releases, e.g. {accuracy: 0.9, macro_f1: 0.85} for classification (min_exact_count_accuracy applies to count tasks only).",
    )


class ExportConfig(_Strict):
    opset: int = Field(18, ge=13, le=23)
    parity_atol: float = Field(1e-3, gt=0.0, description="Max |onnx - torch| allowed on any output of the test split.")
    parity_min_rounded_agreement: float = Field(
        1.0, ge=0.0, le=1.0, description="Share of samples whose rounded counts must match torch."
    )
    parity_max_samples: int = Field(2048, ge=1, description="Test rows used for the parity check.")


class FormatTolerance(_Strict):
    """Parity bar of one deploy format against the torch model on held-out images."""

    atol: float = Field(..., gt=0.0, description="Max |format - torch| allowed on any output.")
    min_rounded_agreement: float = Field(
        0.99, ge=0.0, le=1.0, description="Share of images whose rounded counts must all equal torch's."
    )


class FormatTolerances(_Strict):
    """Per-format parity bars (ONNX fp32 keeps export.parity_*). fp16 and int8 carry real rounding
    error, so their atol is looser; the rounded-count agreement is what a user sees."""

    coreml_fp32: FormatTolerance = Field(default_factory=lambda: FormatTolerance(atol=1e-3))
    coreml_fp16: FormatTolerance = Field(default_factory=lambda: FormatTolerance(atol=0.25))
    onnx_int8_static: FormatTolerance = Field(default_factory=lambda: FormatTolerance(atol=0.5))
    onnx_int8_dynamic: FormatTolerance = Field(default_factory=lambda: FormatTolerance(atol=0.5))


class CoreMLConfig(_Strict):
    enabled: bool = Field(True, description="Convert to a CoreML .mlpackage (fp32).")
    fp16: bool = Field(
        True, description="Also convert an fp16 .mlpackage; it ships only if its fp16 estimate passes the gates."
    )
    max_batch: int = Field(256, ge=1, le=65536, description="Upper bound of the flexible batch dimension.")
    deployment_target: Literal["iOS15", "iOS16", "iOS17", "macOS12", "macOS13", "macOS14"] = Field(
        "iOS16", description="Minimum OS of the ML program."
    )


class QuantizationConfig(_Strict):
    static: bool = Field(True, description="Static int8 QDQ model calibrated on training images.")
    dynamic: bool = Field(True, description="Dynamic int8 model (weights int8, activations quantised at run time).")
    calibration_samples: int = Field(
        256, ge=8, le=100_000, description="Training images used to calibrate activation ranges."
    )
    per_channel: bool = Field(True, description="Per-channel weight scales.")
    weight_type: Literal["int8", "uint8"] = Field(
        "uint8",
        description="U8S8 per-channel overflows on CPUs without VNNI (measured: the counter fell to 0.008 exact-count accuracy); U8U8 kept 0.979.",
    )
    activation_type: Literal["int8", "uint8"] = Field("uint8")
    keep_head_fp32: bool = Field(
        True, description="Leave the last Conv (the density head, whose error is summed over the map) in fp32."
    )
    latency_batch: int = Field(1, ge=1, le=4096, description="Batch size of the latency measurement.")
    latency_repeats: int = Field(30, ge=1, le=10_000, description="Timed runs per format; the median is reported.")


class PropertyTestConfig(_Strict):
    """Behavioural tests on generated pizzas (CheckList's minimum functionality, invariance and
    directional kinds). A property passes when at most max_failure_rate of its examples fail."""

    enabled: bool = Field(True)
    examples: int = Field(60, ge=1, le=10_000, description="Hypothesis examples per property.")
    seed: int = Field(20240531, description="Hypothesis seed: the same pizzas every run.")
    mft_tolerance: float = Field(
        0.5, gt=0.0, description="Empty pizza / one topping: every |pred - true| must be below this."
    )
    invariance_tolerance: float = Field(
        0.5, gt=0.0, description="Rotations, flips, re-layout: max |pred change| per topping."
    )
    directional_min_rise: float = Field(
        0.5, gt=0.0, description="Adding a topping must raise its count by more than this."
    )
    directional_max_other_change: float = Field(
        0.5, gt=0.0, description="...while every other count moves less than this."
    )
    max_failure_rate: float = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="Share of a property's examples allowed to fail. A good counter (~96% image-exact) misses ~8% of two-image examples; 0.15 over 60 examples rejects it <5% of the time, while a broken model fails at 30-100%.",
    )


class ReleaseConfig(_Strict):
    """Release gates and deploy formats: a bundle is released only when every gate of a primary
    format (torch, ONNX fp32, CoreML fp32) passes; optional formats (fp16, int8) ship only if they pass."""

    tolerances: FormatTolerances = Field(default_factory=FormatTolerances)
    coreml: CoreMLConfig = Field(default_factory=CoreMLConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    properties: PropertyTestConfig = Field(default_factory=PropertyTestConfig)
    RETIRED_KEYS = {
        "intended_use": "moved to card.intended_use (the model card's own section)",
        "limitations": "moved to card.limitations (the model card's own section)",
    }

    grid_examples: int = Field(
        6, ge=0, le=50, description="Worst, best and corner-case test images each in the error-analysis grid."
    )


class CardConfig(_Strict):
    """The model card's statements about the model that no measurement makes: who owns it, under which
    terms it may be used, which version it is, what it is for and where it fails
    (``bundle/model_card.md``; the card's measured parts come from the run)."""

    owner: str = Field(
        "unassigned",
        min_length=1,
        max_length=200,
        description="Team or person answerable for the model, whom its consumers ask.",
    )
    contact: str | None = Field(
        None, max_length=200, description="How to reach the owner (an e-mail address, a channel); empty: not stated."
    )
    license: str = Field(
        "proprietary",
        min_length=1,
        max_length=100,
        description="Terms of use of the model and its weights: an SPDX id (Apache-2.0, CC-BY-4.0) or 'proprietary'.",
    )
    version: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$",
        description="Model version consumers pin, e.g. 1.4.0; empty: the run id.",
    )
    intended_use: str = Field(
        "Counting toppings on top-down 64x64 photos of pizzas like the training set, for kitchen QA dashboards.",
        max_length=2000,
        description="What the model is for, and for whom.",
    )
    out_of_scope: list[str] = Field(
        default_factory=lambda: ["Food safety or allergen decisions: a miscount is not caught by anyone downstream."],
        description="Uses the model is not meant for.",
    )
    limitations: list[str] = Field(
        default_factory=lambda: [
            "Trained on synthetic pizzas only: real photos (angles, lighting, overlapping toppings) are out of distribution.",
            "Counts above the training maximum per topping were never seen and are likely under-counted.",
        ],
        description="Known limitations, beyond those the gates measure.",
    )


class OrchestrationConfig(_Strict):
    """How Prefect runs the pipeline: where task results persist, and whether finished stages are
    reused across runs."""

    result_storage: str | None = Field(
        None,
        description="Folder or fsspec URL (s3://bucket/prefix) for persisted task results; empty: <artifacts_dir>/.prefect-results.",
    )
    cache: bool = Field(
        True, description="Reuse a stage's result when its inputs (config section, upstream data, code) are unchanged."
    )
    publish_url: str | None = Field(
        None,
        description="fsspec URL (s3://bucket/bundles) the bundle is copied to after packaging, as <publish_url>/<run-id>/, then read back and checked against its manifest; empty: not published.",
    )


class PackagingConfig(_Strict):
    """Signing of the release bundle (OpenSSF model-signing with a key: offline, no Sigstore service)."""

    signing_key: str | None = Field(
        None,
        description="PEM file of an ECDSA private key (P-256, P-384 or P-521) that signs each bundle into bundle.sig, covering every file (manifest.json with its release and review status included); the review gate re-signs after approval, and publishing refuses a bundle without a valid signature while a key is set. Empty: the file DOUGHFLOW_SIGNING_KEY names, else bundles are not signed. An encrypted key takes its password from DOUGHFLOW_SIGNING_KEY_PASSWORD. Check with python -m flows.verify BUNDLE --public-key PUB.pem.",
    )


class ReviewGateConfig(_Strict):
    """When human verdicts approve a bundle for release (separate from the automated gates)."""

    min_correct_share: float = Field(
        0.95, ge=0.0, le=1.0, description="Share of reviewed samples judged correct needed for approval."
    )
    min_reviewed: int = Field(
        20, ge=1, description="Distinct samples that must carry a verdict before approval is possible."
    )
    min_reviewers: int = Field(1, ge=1, description="Distinct reviewer names needed for approval.")


class ReviewConfig(_Strict):
    """The review packet each run writes for people who know pizza (artifacts/<run-id>/review/),
    and the gate their verdicts must pass. Sample = stratified + worst errors + format disagreements."""

    enabled: bool = Field(True, description="Write the review packet.")
    per_stratum: int = Field(
        2, ge=0, le=1000, description="Samples per (topping, true count) stratum: every topping at every count is seen."
    )
    worst_errors: int = Field(
        8, ge=0, le=1000, description="Test samples with the largest absolute count error (torch)."
    )
    format_disagreements: int = Field(
        4, ge=0, le=1000, description="Test samples where the exported formats differ most from torch."
    )
    max_samples: int = Field(
        60,
        ge=1,
        le=5000,
        description="Upper bound of the packet size: worst errors and format disagreements first, the stratified draw fills the rest.",
    )
    seed: int = Field(11, description="Seed of the stratified draw: the same packet for the same run.")
    image_scale: int = Field(
        3, ge=1, le=8, description="Images are shown enlarged this many times (pixelated, not smoothed)."
    )
    gate: ReviewGateConfig = Field(default_factory=ReviewGateConfig)


class ReportConfig(_Strict):
    """What the run report (report.md, report.html, also in the bundle) shows."""

    include_images: bool = Field(
        True,
        description="Put example images in the report, and so in the bundle: the worst test examples, removed near-duplicate pairs and the error-analysis grid. false: the bundle ships no customer photos (tables, curves and the confusion matrix stay). The review packet beside the bundle still shows images: reviewers need them.",
    )


class PrivacyConfig(_Strict):
    """Customer (group) ids are pseudonymised (HMAC-SHA256 with a secret key) wherever they leave the run's data/ folder: reports, review packet and samples, Prefect artifacts, error messages."""

    key_file: str | None = Field(
        None,
        description="File with the pseudonym key, generated on first use (mode 0600) and refused when others can read it; empty: <artifacts_dir>/.keys/pseudonym.key. The environment variable DOUGHFLOW_PSEUDONYM_KEY (the key itself) takes precedence. Never inside a bundle: whoever holds the key can test guesses of customer ids.",
    )


class SearchParamConfig(_Strict):
    """One tuned field: a float or int range (optionally log-scaled or stepped) or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(
        ..., description="How Optuna samples it: suggest_float, suggest_int or suggest_categorical."
    )
    low: float | None = Field(None, description="float/int: smallest value.")
    high: float | None = Field(None, description="float/int: largest value (included).")
    log: bool = Field(False, description="float/int: sample uniformly in log space (learning rates, weight decay).")
    step: float | None = Field(
        None, gt=0.0, description="float/int: sample only low + k*step; cannot be combined with log."
    )
    choices: list[Any] | None = Field(
        None, min_length=1, description="categorical: the values (None, bool, int, float or str)."
    )

    @model_validator(mode="after")
    def _fits_its_type(self) -> SearchParamConfig:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs choices")
            bad = [c for c in self.choices if c is not None and not isinstance(c, (bool, int, float, str))]
            if bad:
                raise ValueError(f"choices must be None, bool, int, float or str (Optuna stores them), got {bad}")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs low and high")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined")
        if self.type == "int" and any(v is not None and float(v) != int(v) for v in (self.low, self.high, self.step)):
            raise ValueError("an int parameter needs whole-number low, high and step")
        return self

    def bounds(self) -> tuple[float, float]:
        """(low, high) of a float or int parameter (the validator makes both present)."""
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter has no low and high")
        return self.low, self.high


class PrunerConfig(_Strict):
    """Stops trials whose per-epoch validation metric is worse than the median of earlier trials at the same epoch."""

    kind: Literal["median", "none"] = Field(
        "median", description="median: Optuna's MedianPruner; none: every trial runs all its epochs."
    )
    n_startup_trials: int = Field(3, ge=0, description="No pruning until this many trials have finished.")
    n_warmup_steps: int = Field(2, ge=0, description="No pruning within a trial's first this many epochs.")
    interval_steps: int = Field(1, ge=1, description="Judge every this many epochs.")


class TuneConfig(_Strict):
    """``python -m flows.tune``: an Optuna study over config fields, each trial a training run on the cached data."""

    search_space: dict[str, SearchParamConfig] = Field(
        default_factory=lambda: {
            "train.learning_rate": SearchParamConfig(type="float", low=3e-4, high=1e-2, log=True),
            "train.weight_decay": SearchParamConfig(type="float", low=1e-6, high=1e-2, log=True),
            "train.model.width": SearchParamConfig(type="categorical", choices=[16, 24, 32]),
            "train.augment.brightness": SearchParamConfig(type="float", low=0.0, high=0.3),
        },
        description="Dotted config path (e.g. train.learning_rate) -> how to sample it.",
    )
    n_trials: int = Field(
        12, ge=1, le=100_000, description="Trials in the study in total; a rerun resumes and adds trials up to this."
    )
    timeout_seconds: float | None = Field(
        None, gt=0.0, description="Start no new trial after this many seconds of this invocation; empty: no limit."
    )
    metric: Literal["val_exact_count_accuracy", "val_mae", "train_loss", "val_accuracy", "val_loss"] = Field(
        "val_exact_count_accuracy",
        description="Epoch metric the trainer computes: reported each epoch for pruning; a trial's value is it at the epoch the trainer keeps (classification: val_accuracy, val_loss).",
    )
    direction: Literal["maximize", "minimize"] = Field("maximize", description="Whether a larger metric is better.")
    storage: str | None = Field(
        None,
        description="Optuna storage URL (sqlite:///..., postgresql://user:pw@host/db); empty: sqlite:///<artifacts_dir>/tune/<study_name>.sqlite3.",
    )
    study_name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="Study name in the storage; empty: the experiment name."
    )
    seed: int = Field(42, description="TPE sampler seed.")
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    enqueue: list[dict[str, Any]] = Field(
        default_factory=lambda: [
            {
                "train.learning_rate": 3e-3,
                "train.weight_decay": 1e-4,
                "train.model.width": 24,
                "train.augment.brightness": 0.0,
            },
        ],
        description="Trials to run first with these params ({dotted path: value}), e.g. the current config as a baseline; skipped when the study already has them.",
    )

    @model_validator(mode="after")
    def _direction_matches_metric(self) -> TuneConfig:
        wanted = "maximize" if self.metric in ("val_exact_count_accuracy", "val_accuracy") else "minimize"
        if self.direction != wanted:
            raise ValueError(f"tune.metric {self.metric} should be {wanted}d, not {self.direction}d")
        return self

    def study(self, experiment: str) -> str:
        return self.study_name or experiment


# Search-space paths. A key of tune.search_space is a dotted config path (train.learning_rate); it is
# checked when the config loads, so a typo or a range the field itself would reject (train.model.width
# low 2 while the field needs >= 4) fails before any trial runs, naming the key. Cross-field rules
# (split fractions summing to one) are checked when a trial's sample is applied, with its values.

# Tuning the tuner itself would change the study mid-study.
FORBIDDEN_ROOTS = ("tune",)


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (also inside ``X | None``), or None for a plain value."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_mapping(annotation: Any) -> bool:
    return any(typing.get_origin(c) is dict or c is dict for c in (annotation, *typing.get_args(annotation)))


def resolve_field(model: type[BaseModel], path: str) -> TypeAdapter | None:
    """A validator for the value at ``path``; None for a key inside a free-form mapping (model.options).
    Raises ValueError saying where the path stops leading to a value."""
    parts = path.split(".")
    if not all(parts):
        raise ValueError("the path has an empty part")
    if parts[0] in FORBIDDEN_ROOTS:
        raise ValueError("the tune section cannot be tuned")
    current: type[BaseModel] = model
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        field = current.model_fields.get(part)
        if field is None:
            known = ", ".join(current.model_fields)
            raise ValueError(f"no field {where!r} (known here: {known})")
        last = depth == len(parts) - 1
        nested = _model_class(field.annotation)
        if nested is not None:
            if last:
                raise ValueError(f"{where!r} is a section, not a value: tune one of its fields")
            current = nested
            continue
        if _is_mapping(field.annotation) and not last:
            return None  # free-form options: the model factory checks them
        if not last:
            raise ValueError(f"{where!r} is a value, not a section")
        built: Any = Annotated[field.annotation, field]  # a type made at run time: mypy cannot follow it
        return TypeAdapter(built)
    raise AssertionError("unreachable")


def _values_to_check(spec: SearchParamConfig) -> list[Any]:
    if spec.type == "categorical":
        return list(spec.choices or [])
    cast = int if spec.type == "int" else float
    return [cast(bound) for bound in spec.bounds()]


def check_space(
    model: type[BaseModel], space: dict[str, SearchParamConfig], enqueue: Sequence[dict[str, Any]] = ()
) -> None:
    """Every key a field, every bound and choice a value that field accepts; enqueued trials name
    only tuned keys. Raises ValueError naming the key."""
    for path, spec in space.items():
        try:
            adapter = resolve_field(model, path)
        except ValueError as error:
            raise ValueError(f"tune.search_space[{path!r}]: {error}") from None
        if adapter is None:
            continue
        for value in _values_to_check(spec):
            try:
                adapter.validate_python(value)
            except ValidationError as error:
                reason = "; ".join(e["msg"] for e in error.errors())
                raise ValueError(f"tune.search_space[{path!r}]: {value!r} is not a valid value ({reason})") from None
    for index, params in enumerate(enqueue):
        unknown = sorted(set(params) - set(space))
        if unknown:
            raise ValueError(
                f"tune.enqueue[{index}] sets {unknown}, which are not in tune.search_space (fix the keys, or drop the baseline with tune.enqueue=[])"
            )


class MlflowConfig(_Strict):
    """MLflow tracking: every train run becomes an MLflow run (config as params; data fingerprint, git
    commit, run ids and release status as tags; per-epoch and final metrics; report, bundle and the ONNX
    model), a released bundle a version of a registered model, and a tuning study a parent run with one
    nested run per trial."""

    enabled: bool = Field(True, description="Log runs, models and tuning studies to MLflow.")
    uri: str | None = Field(
        None,
        description="Tracking URI: a server (http://host:5000) or a database (sqlite:///path.db); empty: MLFLOW_TRACKING_URI, else sqlite:///<artifacts_dir>/mlflow.db (mlflow ui --backend-store-uri <that> shows it, no server needed).",
    )
    experiment: str | None = Field(None, min_length=1, description="MLflow experiment; empty: the experiment name.")
    registered_model: str | None = Field(
        None,
        min_length=1,
        description="Registered model a released bundle becomes a version of; empty: the experiment name.",
    )
    log_bundle: bool = Field(
        True,
        description="Copy the whole bundle into the run's artifacts (the report and the ONNX model are logged either way).",
    )


class TrackingConfig(_Strict):
    """Where runs are tracked besides doughflow's own registry."""

    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)


class ExperimentConfig(_Strict):
    """One experiment: data, labels, training, evaluation and export. Edit a copy of
    configs/pizza.yaml, or override fields with key=value on the command line."""

    name: str = Field(
        "pizza", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Experiment name; part of run ids."
    )
    labels: list[Label] = Field(
        default_factory=lambda: list[str | int](DEFAULT_TOPPINGS),
        description="The classes, in output order: the label map of the model and bundle (labels.json keeps them as "
        "given). Names or integers as the data has them ([0, 1, 2], [cat, dog], ['3 door', 'crème']). "
        "Toppings for the pizza counter; not used by the text adapter without data.label_column.",
    )
    artifacts_dir: str = Field("artifacts", description="Where runs, bundles and cached data are written.")
    orchestration: OrchestrationConfig = Field(default_factory=OrchestrationConfig)
    registry_path: str | None = Field(None, description="SQLite run registry; empty: <artifacts_dir>/registry.sqlite.")
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    dask: DaskConfig = Field(default_factory=DaskConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    release: ReleaseConfig = Field(default_factory=ReleaseConfig)
    packaging: PackagingConfig = Field(default_factory=PackagingConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    card: CardConfig = Field(default_factory=CardConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("labels")
    @classmethod
    def _labels_unique_and_printable(cls, labels: list[str | int]) -> list[str | int]:
        return check_labels(labels)

    @property
    def label_names(self) -> list[str]:
        """The labels' text, in output order: what metrics, reports and class matching use."""
        return [label_name(label) for label in self.labels]

    @model_validator(mode="after")
    def _builtin_labels_are_drawable(self) -> ExperimentConfig:
        if self.data.source.url is None:
            menu = self.label_names + (self.data.source.generator.base_menu or [])
            unknown = sorted({label for label in menu if label not in DRAWABLE_TOPPINGS})
            if unknown:
                raise ValueError(
                    f"labels {unknown} cannot be drawn by the built-in generator "
                    f"(labels or data.source.generator.base_menu); known toppings: {sorted(DRAWABLE_TOPPINGS)}"
                )
        strangers = [label for label in self.data.label_defaults if label not in self.label_names]
        if strangers:
            raise ValueError(f"data.label_defaults names {strangers}, which are not labels {self.labels}")
        return self

    @field_validator("tune")
    @classmethod
    def _search_space_paths_exist(cls, tune: TuneConfig) -> TuneConfig:
        if tune.search_space or tune.enqueue:
            check_space(cls, tune.search_space, tune.enqueue)
        return tune

    def result_storage_url(self) -> str:
        """``orchestration.result_storage``, else DOUGHFLOW_RESULT_STORAGE (set by the compose stack for its
        worker: results on its S3), else a folder beside the runs."""
        return (
            self.orchestration.result_storage
            or os.environ.get("DOUGHFLOW_RESULT_STORAGE")
            or str(Path(self.artifacts_dir) / ".prefect-results")
        )

    def registry_file(self) -> str:
        return self.registry_path or str(Path(self.artifacts_dir) / "registry.sqlite")

    def mlflow_uri(self) -> str:
        """``tracking.mlflow.uri``, else MLFLOW_TRACKING_URI (the compose stack sets it for its worker), else
        a SQLite store beside the runs (an absolute path: MLflow resolves a relative one against the cwd)."""
        return (
            self.tracking.mlflow.uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{(Path(self.artifacts_dir) / 'mlflow.db').resolve()}"
        )

    def config_hash(self) -> str:
        """Stable hash of every field: two runs with equal hashes had the same configuration."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value``; the value is parsed as YAML so numbers, booleans and lists work."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not key.strip() or any(not part for part in path):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({error})") from error
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted path in a plain dict. Unknown keys are caught later by validation, which
    names them; here we only refuse to descend through a value that is not a mapping."""
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"override {text!r}: {where} is a value, not a section")
            node = child
        node[path[-1]] = value
    return raw


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        if item["type"] == "retired_key":
            section = f"{field}." if item["loc"] else ""
            lines += [f"  {section}{key} {why}" for key, why in item["ctx"]["retired"].items()]
            continue
        detail = item["msg"]
        if item["type"] == "extra_forbidden":
            detail = "unknown field"
        # A rule over a whole section names its fields itself; echoing the section would bury it.
        got = "" if isinstance(item.get("input"), dict) else f" (got {item.get('input')!r})"
        lines.append(f"  {field}: {detail}{got}")
    return "\n".join(lines)


def validate_config(raw: dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment, apply ``key=value`` overrides and validate, before any work.
    :func:`doughflow.experiment.load_experiment` also checks it against the code it names."""
    if not path and not DEFAULT_CONFIG.exists():  # an installed package ships no configs/: the defaults equal it
        return validate_config(apply_overrides({}, overrides or []), source="the built-in defaults")
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [])
    return validate_config(raw, source=config_source(path))


def config_source(path: str | Path | None) -> str:
    """How messages name the config file ``path`` (None: the default experiment)."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
