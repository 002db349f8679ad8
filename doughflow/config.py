"""The one place where an experiment's configuration is defined.

An experiment is one YAML file parsed into :class:`ExperimentConfig`. The same model is the
Prefect flow's parameter, so the Prefect UI renders it as a form with these descriptions and
defaults. Every model forbids unknown keys so that a typo fails before any work starts, naming
the field, instead of being silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

try:
    import yaml
except ImportError:  # the GPU throughput benchmark runs with torch + deepspeed only; YAML needs PyYAML
    yaml = None
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "pizza.yaml"


# The built-in experiment's label map, and the menu of its historical photos.
DEFAULT_TOPPINGS = ("pepperoni", "mushroom", "olive", "basil", "pepper")


class ConfigError(ValueError):
    """Raised for any configuration problem; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PizzaGeneratorConfig(_Strict):
    """The built-in synthetic pizza set: drawn deterministically from the seed, so every machine
    gets the same bytes and the run needs no download."""

    num_images: int = Field(6000, ge=10, le=2_000_000, description="Distinct pizzas to draw (before planted copies).")
    image_size: int = Field(64, ge=32, le=512, description="Side of the square RGB image in pixels.")
    max_count: int = Field(3, ge=1, le=6, description="Each topping appears 0..max_count times.")
    num_customers: int = Field(400, ge=3, description="Customer ids are drawn from a Zipf-like distribution over this many.")
    customer_skew: float = Field(1.1, ge=0.0, le=3.0, description="Zipf exponent: larger means a few customers own more orders.")
    exact_duplicate_rate: float = Field(0.03, ge=0.0, le=0.5, description="Share of extra rows that are byte-identical copies.")
    near_duplicate_rate: float = Field(0.04, ge=0.0, le=0.5, description="Share of extra rows that are re-encoded, shifted or recoloured copies.")
    corrupt_rows: int = Field(4, ge=0, description="Rows with undecodable images or impossible labels, to exercise quarantine.")
    rows_per_shard: int = Field(2000, ge=10, description="Rows per generated Parquet shard.")
    seed: int = Field(7, description="Generator seed; changes every image.")
    base_menu: list[str] | None = Field(default_factory=lambda: list(DEFAULT_TOPPINGS), description="Toppings on the menu when the historical photos were taken; the base set is drawn with these alone, so adding a label does not redraw it. Each label beyond them is a new recipe: its own batch of new_recipe_images pizzas is drawn (with the menu of its time) and appended, and older photos count it as 0. Empty: the labels themselves (no menu history).")
    new_recipe_images: int = Field(1500, ge=10, le=2_000_000, description="Pizzas drawn for each topping added after base_menu (its recipes are featured in that batch).")


class SourceConfig(_Strict):
    """Where raw data comes from. With no url the built-in pizza generator writes it on first use."""

    url: str | None = Field(None, description="fsspec URL of a Parquet, CSV or JSONL file, a folder of them, or an image folder (local path, file://, http(s)://, s3://...). Empty: use the built-in generator.")
    format: Literal["auto", "parquet", "csv", "jsonl", "images"] = Field("auto", description="Source format; auto decides by file extension (a folder of .png/.jpg files is an image folder).")
    retries: int = Field(4, ge=0, le=20, description="Retries of a transient read error per source file, with exponential backoff.")
    backoff_seconds: float = Field(0.5, ge=0.0, le=60.0, description="First retry delay; doubles on each retry.")
    labels: str | None = Field(None, description="Image folders: CSV of labels with a 'path' column (image path relative to the source, or file name); a URL or a path relative to the source. Empty: labels.csv at the source root if present.")
    generator: PizzaGeneratorConfig = Field(default_factory=PizzaGeneratorConfig)


class DaskConfig(_Strict):
    """Where the data stages compute. With no address a LocalCluster of worker processes on the
    loopback interface is started for the stage and closed after it."""

    address: str | None = Field(None, description="Scheduler address of an existing Dask cluster (tcp://host:8786). Empty: a LocalCluster.")
    n_workers: int = Field(2, ge=1, le=256, description="LocalCluster worker processes.")
    threads_per_worker: int = Field(1, ge=1, le=64, description="Threads per LocalCluster worker.")
    memory_limit: str = Field("1.5GiB", description="Memory limit per LocalCluster worker (Dask spills, then pauses, before it).")
    local_directory: str | None = Field(None, description="Spill and shuffle scratch folder; empty: the system temp folder.")
    in_process_below_rows: int = Field(100_000, ge=0, description="With no address, a stage over fewer rows runs on an in-process cluster (threads): starting worker processes and moving data between them costs more than such work. 0: always worker processes.")
    shuffle_method: Literal["auto", "tasks", "p2p", "disk"] = Field("auto", description="Dask DataFrame shuffle method; auto lets Dask choose (p2p on a distributed cluster).")

    def scheduler_address(self) -> str | None:
        """``address``, else DOUGHFLOW_DASK_ADDRESS (the compose stack sets it for its worker). Where the
        data stages compute changes no result, so a machine-wide setting may pick it."""
        return self.address or os.environ.get("DOUGHFLOW_DASK_ADDRESS") or None


class NearDupConfig(_Strict):
    """Near-duplicate removal: MinHash + LSH for text, perceptual hash + Hamming LSH for images."""

    kind: Literal["none", "image", "text"] = Field("image", description="What the rows are compared on; none disables near-dup.")
    text_column: str = Field("text", description="Text column for kind=text.")
    threshold: float = Field(0.7, gt=0.0, lt=1.0, description="Text: Jaccard similarity at or above which two rows are near-duplicates.")
    shingle: Literal["word", "char"] = Field("word", description="Text shingles: word n-grams or character n-grams.")
    shingle_size: int = Field(3, ge=1, le=32, description="n of the n-gram shingles.")
    num_perm: int = Field(128, ge=8, le=1024, description="MinHash permutations.")
    scheme: Literal["affine32", "legacy"] = Field("affine32", description="datasketch MinHash permutation scheme reproduced bit for bit.")
    seed: int = Field(1, description="MinHash seed (datasketch's seed).")
    false_negative_weight: float = Field(0.9, gt=0.0, lt=1.0, description="Weight of misses vs false candidates when bands x rows are chosen from the threshold (datasketch's optimiser); verification removes the false candidates.")
    verify: Literal["signature", "exact", "none"] = Field("signature", description="Check candidate pairs: signature agreement (estimated Jaccard), exact Jaccard of shingles (gathers candidate texts), or not at all.")
    levenshtein_max_chars: int = Field(0, ge=0, description="With verify=exact, strings up to this length are compared by rapidfuzz ratio instead of Jaccard.")
    image_hash_size: int = Field(22, ge=4, le=32, description="Image hash side: the hash has side*side bits (spectrum: 22 -> 484 bits; phash_centred, dhash: 8 -> 64).")
    max_hamming: int = Field(11, ge=0, le=64, description="Images: the hash is split into max_hamming+1 blocks and rows sharing a whole block are candidates, so every pair within max_hamming bits is one (pigeonhole). Spectrum 22/11: blocks of 40 bits, planted copies within 12 of 484 bits, 0.009 chance candidates per row at 1M rows.")
    image_hash: Literal["spectrum", "phash_centred", "dhash"] = Field("spectrum", description="Images: spectrum compares pairs of low-frequency DFT magnitudes (unchanged by shifts, balanced bits: scales to millions of rows); phash_centred is pHash of the image moved to its content centroid; dhash is plain dHash. The 64-bit hashes put thousands of distinct pizzas in one block at 1M rows.")
    bucket_pair_limit: int = Field(2048, ge=2, le=100_000, description="Images: LSH buckets up to this many rows are searched pair by pair (every pair is a candidate); larger buckets get star edges to their smallest key only.")
    thumb_size: int = Field(32, ge=8, le=256, description="Images: side of the grayscale thumbnail candidate pairs are verified on (stored by validation: side*side bytes a row).")
    max_shift: int = Field(1, ge=0, le=16, description="Images: verification takes the best correlation over shifts up to this many thumbnail pixels, in half-pixel steps (1 at 32 px covers 2 px of a 64 px image).")
    min_correlation: float = Field(0.95, gt=0.0, le=1.0, description="Images: candidates whose best thumbnail correlation (low frequencies, brightness ignored) reaches this are near-duplicates. Planted copies score >= 0.995, distinct pizzas of one recipe and counts <= 0.85.")
    keep_per_component: int = Field(1, ge=1, description="Rows kept per near-duplicate component (lowest ids).")


class ClusterCapConfig(_Strict):
    """Cap over-represented looks: MiniBatchKMeans on each image's central colour histogram (the
    embedding validation stores; text: hashed word counts), at most so many rows per cluster."""

    max_per_cluster: int | None = Field(600, ge=1, description="Rows kept per cluster; empty: no absolute cap.")
    max_over_mean: float | None = Field(None, gt=1.0, description="Rows kept per cluster as a multiple of the mean cluster size (live rows / n_clusters): a cap that means the same at 6k rows and at 1M. With max_per_cluster too, the smaller applies; both empty disables clustering.")
    n_clusters: int = Field(16, ge=2, le=4096)
    sample_rows: int = Field(20000, ge=100, description="Rows the k-means is fitted on; the rest are assigned per partition.")

    @property
    def enabled(self) -> bool:
        return self.max_per_cluster is not None or self.max_over_mean is not None


class SubsampleConfig(_Strict):
    """Data reduction between validation and splitting; every removed row is recorded with a reason."""

    exact_dedup: bool = Field(True, description="Drop rows whose normalised content equals a row with a lower id.")
    near_dup: NearDupConfig = Field(default_factory=NearDupConfig)
    max_per_id: int | None = Field(300, ge=1, description="At most this many rows per id_cap_column value; empty disables.")
    id_cap_column: str | None = Field(None, description="Column the per-id cap counts by; empty: data.group_column.")
    cluster: ClusterCapConfig = Field(default_factory=ClusterCapConfig)
    seed: int = Field(29, description="Seed of the hash rank that decides which rows a cap keeps.")
    report_examples: int = Field(6, ge=0, le=100, description="Example pairs and groups shown in the report.")


class DataConfig(_Strict):
    source: SourceConfig = Field(default_factory=SourceConfig)
    image_column: str = Field("image", description="Column with encoded image bytes (PNG/JPEG).")
    id_column: str = Field("sample_id", description="Stable unique row id; dedup keeps the lowest.")
    group_column: str = Field("customer_id", description="Internal id that must never straddle splits.")
    rows_per_shard: int = Field(2000, ge=10, description="Rows per fetched/cleaned Parquet shard; bounds memory per step.")
    subsample: SubsampleConfig = Field(default_factory=SubsampleConfig)
    target_prefix: str = Field("count_", description="Label columns are named prefix + label, e.g. count_olive.")
    max_count: int = Field(20, ge=1, description="Counts above this are impossible: such rows are quarantined.")
    image_size: int = Field(64, ge=16, le=1024, description="Images are resized to this square size before the model.")
    image_formats: list[Literal["png", "jpeg", "gif", "webp", "bmp", "tiff"]] = Field(default_factory=lambda: ["png", "jpeg"], min_length=1, description="Image formats validation accepts, by their magic bytes; others are quarantined naming the format, never decoded.")
    max_image_bytes: int = Field(16 * 2**20, ge=1, description="Encoded images larger than this are quarantined before decoding.")
    max_image_pixels: int = Field(4096 * 4096, ge=64, description="Images whose header declares more pixels than this are quarantined before decoding (a 656 KB PNG can declare 15000x15000 and cost 643 MiB to decode).")
    label_defaults: dict[str, float] = Field(default_factory=dict, description="Value of a label's target column in rows whose source file lacks that column, e.g. {onion: 0} when the photos taken before onion was on the menu carry no onion count. A row whose file has the column keeps its own value (a null there is still quarantined); fetch counts the filled rows in its manifest. The built-in generator fills the toppings that were not yet on its menu by itself.")
    extra_sources: list[str] = Field(default_factory=list, description="More Parquet sources (fsspec URLs) with the same label columns, e.g. corrected counts exported by flows.review; appended to the main source with their origin recorded.")
    adapter: str = Field("pizza_counts", pattern=r"^[A-Za-z0-9_.-]+$", description="Registered dataset adapter: which columns are the labels and how a row becomes a target. pizza_counts (count regression, one target_prefix+label column per label), image_classification (one class-name column, label_column), or your own (see import_module).")
    label_column: str = Field("label", description="image_classification: the column with each row's class name (an image folder's top-level folder is the column 'folder'). Rows whose class is not in labels are quarantined.")
    import_module: str | None = Field(None, description="Python module imported before the adapter is looked up, so that its @register_adapter classes exist, e.g. my_project.adapters.")

    def target_columns(self, labels: list[str]) -> list[str]:
        """The numeric target columns, one per label, that training and evaluation read (after validate)."""
        from doughflow.data.adapters import adapter_for_data

        return adapter_for_data(self, labels).target_columns


class SplitConfig(_Strict):
    train: float = Field(0.7, gt=0.0, lt=1.0, description="Share of groups (customers) in train.")
    val: float = Field(0.15, ge=0.0, lt=1.0, description="Share of groups in validation.")
    test: float = Field(0.15, gt=0.0, lt=1.0, description="Share of groups in test.")
    seed: int = Field(13, description="Seed of the group hash; changing it reshuffles customers.")

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> "SplitConfig":
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1.0, got {total:.4f}")
        return self


class ModelConfig(_Strict):
    name: str = Field("density_cnn", pattern=r"^[A-Za-z0-9_.-]+$", description="Registered model factory: density_cnn (small CPU counter), resnet (ResNet-style, for GPUs), or your own (see import_module).")
    width: int = Field(24, ge=4, le=512, description="Channels of the first block; later blocks double it.")
    options: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments for the model factory, e.g. {blocks: [2, 2, 2, 2]} for resnet.")
    import_module: str | None = Field(None, description="Python module imported before the model is built (in every training process), so that its @register_model factories exist, e.g. my_project.models.")


class AugmentConfig(_Strict):
    """Per-sample augmentations applied in the loader workers; all of them leave the counts unchanged."""

    rot90: bool = Field(True, description="Random multiple of 90 degree rotation.")
    hflip: bool = Field(True, description="Random horizontal flip.")
    vflip: bool = Field(False, description="Random vertical flip.")
    brightness: float = Field(0.0, ge=0.0, le=0.9, description="Random brightness scale in [1 - b, 1 + b]; 0 disables.")


class LoaderConfig(_Strict):
    """The streaming Parquet loader: memory is bounded by shuffle_buffer encoded rows plus one row group per worker."""

    num_workers: int = Field(2, ge=0, le=64, description="DataLoader worker processes that read, decode and augment; 0 reads in the training process.")
    shuffle_buffer: int = Field(2048, ge=1, description="Rows held per worker for shuffling (encoded bytes, not pixels).")
    piece_rows: int = Field(512, ge=1, description="Shards are cut into pieces of this many rows, the unit dealt to ranks and workers.")
    prefetch_factor: int = Field(4, ge=1, description="Batches each worker prepares ahead.")
    pin_memory: bool = Field(True, description="Pin batches for asynchronous host-to-GPU copies (GPU only).")
    verify_checksums: bool = Field(True, description="Check each shard's sha256 against the split manifest before reading it.")
    on_bad_row: Literal["fail", "skip"] = Field("fail", description="An undecodable image or non-finite label: fail naming shard, row and id, or skip it with a counted warning.")
    max_bad_rows: int = Field(100, ge=0, description="With on_bad_row=skip, fail anyway after this many skipped rows per worker.")


class LauncherConfig(_Strict):
    """How many processes train. One runs in the task's process; more run under a launcher subprocess."""

    num_processes: int = Field(1, ge=1, le=1024, description="Training processes per node: one per GPU, or several CPU processes (gloo).")
    num_nodes: int = Field(1, ge=1, description="Nodes; more than one needs a hostfile and the deepspeed launcher.")
    hostfile: str | None = Field(None, description="DeepSpeed hostfile ('host slots=N' lines) for multi-node runs.")
    launcher: Literal["auto", "torchrun", "deepspeed"] = Field("auto", description="auto: deepspeed with a hostfile, torchrun otherwise.")
    isolate: bool = Field(False, description="Run even a single process as a subprocess, so a crash cannot take the flow down and a retry resumes.")
    master_addr: str = Field("127.0.0.1", description="Rendezvous address (rank 0's host for multi-node).")
    master_port: int = Field(0, ge=0, le=65535, description="Rendezvous port; 0 picks a free one each run.")
    timeout_minutes: int = Field(30, ge=1, description="Collective timeout (DEEPSPEED_TIMEOUT): a stuck peer fails the run instead of hanging.")


class EarlyStoppingConfig(_Strict):
    metric: str = Field("val_exact_count_accuracy", description="Epoch metric that picks the best checkpoint and drives early stopping (val_mae, val_exact_count_accuracy, train_loss).")
    mode: Literal["max", "min"] = Field("max", description="Whether a larger metric is better.")
    patience: int = Field(0, ge=0, description="Stop after this many epochs without improvement; 0 never stops early.")
    min_delta: float = Field(0.0, ge=0.0, description="Smallest change that counts as an improvement.")


class TrainConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    epochs: int = Field(16, ge=1, le=1000)
    micro_batch_size: int = Field(64, ge=1, le=4096, description="Per-device batch (DeepSpeed train_micro_batch_size_per_gpu).")
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    learning_rate: float = Field(3e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    warmup_steps: int = Field(50, ge=0, description="Linear warm-up steps before cosine decay.")
    gradient_clipping: float = Field(1.0, ge=0.0, description="Max gradient norm; 0 disables.")
    zero_stage: int = Field(0, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="fp32 on CPUs; bf16/fp16 use torch autocast on GPUs.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto")
    num_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 keeps torch's default.")
    log_every_steps: int = Field(10, ge=1)
    seed: int = Field(1234)
    lr_schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="Shape after the linear warm-up.")
    min_lr_ratio: float = Field(0.02, ge=0.0, le=1.0, description="Final learning rate as a share of learning_rate.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    launcher: LauncherConfig = Field(default_factory=LauncherConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    checkpoint_every_steps: int = Field(100, ge=0, description="Optimizer steps between checkpoints (plus one per epoch); 0: per epoch only.")
    keep_checkpoints: int = Field(2, ge=1, description="Newest checkpoints kept on disk; older ones are deleted.")
    on_nan_loss: Literal["fail", "skip"] = Field("fail", description="A non-finite loss: fail naming epoch, step and samples, or skip that step with a counted warning.")
    max_skipped_steps: int = Field(10, ge=0, description="With on_nan_loss=skip, fail anyway after this many skipped steps.")
    deterministic: bool = Field(False, description="GPU: deterministic cuDNN/cuBLAS kernels (slower). CPU runs are deterministic anyway.")


class EvaluateConfig(_Strict):
    worst_examples: int = Field(12, ge=0, le=200, description="Worst test images shown in the report.")
    min_exact_count_accuracy: float = Field(0.95, ge=0.0, le=1.0, description="Fail the run when test exact-count accuracy is below this (0 disables).")
    min_metrics: dict[str, float] = Field(default_factory=dict, description="Release gates on test-split metrics: metric name -> the least value that releases, e.g. {accuracy: 0.9, macro_f1: 0.85} for classification (min_exact_count_accuracy applies to count tasks only).")


class ExportConfig(_Strict):
    opset: int = Field(18, ge=13, le=23)
    parity_atol: float = Field(1e-3, gt=0.0, description="Max |onnx - torch| allowed on any output of the test split.")
    parity_min_rounded_agreement: float = Field(1.0, ge=0.0, le=1.0, description="Share of samples whose rounded counts must match torch.")
    parity_max_samples: int = Field(2048, ge=1, description="Test rows used for the parity check.")


class FormatTolerance(_Strict):
    """Parity bar of one deploy format against the torch model on held-out images."""

    atol: float = Field(..., gt=0.0, description="Max |format - torch| allowed on any output.")
    min_rounded_agreement: float = Field(0.99, ge=0.0, le=1.0, description="Share of images whose rounded counts must all equal torch's.")


class FormatTolerances(_Strict):
    """Per-format parity bars (ONNX fp32 keeps export.parity_*). fp16 and int8 carry real rounding
    error, so their atol is looser; the rounded-count agreement is what a user sees."""

    coreml_fp32: FormatTolerance = Field(default_factory=lambda: FormatTolerance(atol=1e-3))
    coreml_fp16: FormatTolerance = Field(default_factory=lambda: FormatTolerance(atol=0.25))
    onnx_int8_static: FormatTolerance = Field(default_factory=lambda: FormatTolerance(atol=0.5))
    onnx_int8_dynamic: FormatTolerance = Field(default_factory=lambda: FormatTolerance(atol=0.5))


class CoreMLConfig(_Strict):
    enabled: bool = Field(True, description="Convert to a CoreML .mlpackage (fp32).")
    fp16: bool = Field(True, description="Also convert an fp16 .mlpackage; it ships only if its fp16 estimate passes the gates.")
    max_batch: int = Field(256, ge=1, le=65536, description="Upper bound of the flexible batch dimension.")
    deployment_target: Literal["iOS15", "iOS16", "iOS17", "macOS12", "macOS13", "macOS14"] = Field("iOS16", description="Minimum OS of the ML program.")


class QuantizationConfig(_Strict):
    static: bool = Field(True, description="Static int8 QDQ model calibrated on training images.")
    dynamic: bool = Field(True, description="Dynamic int8 model (weights int8, activations quantised at run time).")
    calibration_samples: int = Field(256, ge=8, le=100_000, description="Training images used to calibrate activation ranges.")
    per_channel: bool = Field(True, description="Per-channel weight scales.")
    weight_type: Literal["int8", "uint8"] = Field("uint8", description="U8S8 per-channel overflows on CPUs without VNNI (see NOTES); U8U8 is safe.")
    activation_type: Literal["int8", "uint8"] = Field("uint8")
    keep_head_fp32: bool = Field(True, description="Leave the last Conv (the density head, whose error is summed over the map) in fp32.")
    latency_batch: int = Field(1, ge=1, le=4096, description="Batch size of the latency measurement.")
    latency_repeats: int = Field(30, ge=1, le=10_000, description="Timed runs per format; the median is reported.")


class PropertyTestConfig(_Strict):
    """Behavioural tests on generated pizzas (CheckList's minimum functionality, invariance and
    directional kinds). A property passes when at most max_failure_rate of its examples fail."""

    enabled: bool = Field(True)
    examples: int = Field(60, ge=1, le=10_000, description="Hypothesis examples per property.")
    seed: int = Field(20240531, description="Hypothesis seed: the same pizzas every run.")
    mft_tolerance: float = Field(0.5, gt=0.0, description="Empty pizza / one topping: every |pred - true| must be below this.")
    invariance_tolerance: float = Field(0.5, gt=0.0, description="Rotations, flips, re-layout: max |pred change| per topping.")
    directional_min_rise: float = Field(0.5, gt=0.0, description="Adding a topping must raise its count by more than this.")
    directional_max_other_change: float = Field(0.5, gt=0.0, description="...while every other count moves less than this.")
    max_failure_rate: float = Field(0.15, ge=0.0, le=1.0, description="Share of a property's examples allowed to fail. A good counter (~96% image-exact) misses ~8% of two-image examples; 0.15 over 60 examples rejects it <5% of the time, while a broken model fails at 30-100%.")


class ReleaseConfig(_Strict):
    """Release gates and deploy formats: a bundle is released only when every gate of a primary
    format (torch, ONNX fp32, CoreML fp32) passes; optional formats (fp16, int8) ship only if they pass."""

    tolerances: FormatTolerances = Field(default_factory=FormatTolerances)
    coreml: CoreMLConfig = Field(default_factory=CoreMLConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    properties: PropertyTestConfig = Field(default_factory=PropertyTestConfig)
    grid_examples: int = Field(6, ge=0, le=50, description="Worst, best and corner-case test images each in the error-analysis grid.")
    intended_use: str = Field("Counting toppings on top-down 64x64 photos of pizzas like the training set, for kitchen QA dashboards.",
                              description="Model card: what the model is for.")
    limitations: list[str] = Field(default_factory=lambda: [
        "Trained on synthetic pizzas only: real photos (angles, lighting, overlapping toppings) are out of distribution.",
        "Counts above the training maximum per topping were never seen and are likely under-counted.",
    ], description="Model card: known limitations, beyond those the gates measure.")


class OrchestrationConfig(_Strict):
    """How Prefect runs the pipeline: where task results persist, and whether finished stages are
    reused across runs."""

    result_storage: str | None = Field(None, description="Folder or fsspec URL (s3://bucket/prefix) for persisted task results; empty: <artifacts_dir>/.prefect-results.")
    cache: bool = Field(True, description="Reuse a stage's result when its inputs (config section, upstream data, code) are unchanged.")
    publish_url: str | None = Field(None, description="fsspec URL (s3://bucket/bundles) the bundle is copied to after packaging, as <publish_url>/<run-id>/, then read back and checked against its manifest; empty: not published.")


class ReviewGateConfig(_Strict):
    """When human verdicts approve a bundle for release (separate from the automated gates)."""

    min_correct_share: float = Field(0.95, ge=0.0, le=1.0, description="Share of reviewed samples judged correct needed for approval.")
    min_reviewed: int = Field(20, ge=1, description="Distinct samples that must carry a verdict before approval is possible.")
    min_reviewers: int = Field(1, ge=1, description="Distinct reviewer names needed for approval.")


class ReviewConfig(_Strict):
    """The review packet each run writes for people who know pizza (artifacts/<run-id>/review/),
    and the gate their verdicts must pass. Sample = stratified + worst errors + format disagreements."""

    enabled: bool = Field(True, description="Write the review packet.")
    per_stratum: int = Field(2, ge=0, le=1000, description="Samples per (topping, true count) stratum: every topping at every count is seen.")
    worst_errors: int = Field(8, ge=0, le=1000, description="Test samples with the largest absolute count error (torch).")
    format_disagreements: int = Field(4, ge=0, le=1000, description="Test samples where the exported formats differ most from torch.")
    max_samples: int = Field(60, ge=1, le=5000, description="Upper bound of the packet size: worst errors and format disagreements first, the stratified draw fills the rest.")
    seed: int = Field(11, description="Seed of the stratified draw: the same packet for the same run.")
    image_scale: int = Field(3, ge=1, le=8, description="Images are shown enlarged this many times (pixelated, not smoothed).")
    gate: ReviewGateConfig = Field(default_factory=ReviewGateConfig)


class SearchParamConfig(_Strict):
    """One tuned field: a float or int range (optionally log-scaled or stepped) or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(..., description="How Optuna samples it: suggest_float, suggest_int or suggest_categorical.")
    low: float | None = Field(None, description="float/int: smallest value.")
    high: float | None = Field(None, description="float/int: largest value (included).")
    log: bool = Field(False, description="float/int: sample uniformly in log space (learning rates, weight decay).")
    step: float | None = Field(None, gt=0.0, description="float/int: sample only low + k*step; cannot be combined with log.")
    choices: list[Any] | None = Field(None, min_length=1, description="categorical: the values (None, bool, int, float or str).")

    @model_validator(mode="after")
    def _fits_its_type(self) -> "SearchParamConfig":
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


class PrunerConfig(_Strict):
    """Stops trials whose per-epoch validation metric is worse than the median of earlier trials at the same epoch."""

    kind: Literal["median", "none"] = Field("median", description="median: Optuna's MedianPruner; none: every trial runs all its epochs.")
    n_startup_trials: int = Field(3, ge=0, description="No pruning until this many trials have finished.")
    n_warmup_steps: int = Field(2, ge=0, description="No pruning within a trial's first this many epochs.")
    interval_steps: int = Field(1, ge=1, description="Judge every this many epochs.")


class TuneConfig(_Strict):
    """``python -m flows.tune``: an Optuna study over config fields, each trial a training run on the cached data."""

    search_space: dict[str, SearchParamConfig] = Field(default_factory=lambda: {
        "train.learning_rate": SearchParamConfig(type="float", low=3e-4, high=1e-2, log=True),
        "train.weight_decay": SearchParamConfig(type="float", low=1e-6, high=1e-2, log=True),
        "train.model.width": SearchParamConfig(type="categorical", choices=[16, 24, 32]),
        "train.augment.brightness": SearchParamConfig(type="float", low=0.0, high=0.3),
    }, description="Dotted config path (e.g. train.learning_rate) -> how to sample it.")
    n_trials: int = Field(12, ge=1, le=100_000, description="Trials in the study in total; a rerun resumes and adds trials up to this.")
    timeout_seconds: float | None = Field(None, gt=0.0, description="Start no new trial after this many seconds of this invocation; empty: no limit.")
    metric: Literal["val_exact_count_accuracy", "val_mae", "train_loss", "val_accuracy", "val_loss"] = Field("val_exact_count_accuracy", description="Epoch metric the trainer computes: reported each epoch for pruning; a trial's value is it at the epoch the trainer keeps (classification: val_accuracy, val_loss).")
    direction: Literal["maximize", "minimize"] = Field("maximize", description="Whether a larger metric is better.")
    storage: str | None = Field(None, description="Optuna storage URL (sqlite:///..., postgresql://user:pw@host/db); empty: sqlite:///<artifacts_dir>/tune/<study_name>.sqlite3.")
    study_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", description="Study name in the storage; empty: the experiment name.")
    seed: int = Field(42, description="TPE sampler seed.")
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    enqueue: list[dict[str, Any]] = Field(default_factory=lambda: [
        {"train.learning_rate": 3e-3, "train.weight_decay": 1e-4, "train.model.width": 24, "train.augment.brightness": 0.0},
    ], description="Trials to run first with these params ({dotted path: value}), e.g. the current config as a baseline; skipped when the study already has them.")

    @model_validator(mode="after")
    def _direction_matches_metric(self) -> "TuneConfig":
        wanted = "maximize" if self.metric in ("val_exact_count_accuracy", "val_accuracy") else "minimize"
        if self.direction != wanted:
            raise ValueError(f"tune.metric {self.metric} should be {wanted}d, not {self.direction}d")
        return self

    def study(self, experiment: str) -> str:
        return self.study_name or experiment


class ExperimentConfig(_Strict):
    """One experiment: data, labels, training, evaluation and export. Edit a copy of
    configs/pizza.yaml, or override fields with key=value on the command line."""

    name: str = Field("pizza", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Experiment name; part of run ids.")
    labels: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TOPPINGS),
        min_length=1,
        description="Topping classes, in output order. The label map of the model and bundle.",
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
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)

    @field_validator("labels")
    @classmethod
    def _labels_unique_identifiers(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must be unique, got {labels}")
        for label in labels:
            if not label.isidentifier():
                raise ValueError(f"label {label!r} must be a plain identifier (letters, digits, _)")
        return labels

    @model_validator(mode="after")
    def _builtin_labels_are_drawable(self) -> "ExperimentConfig":
        if self.data.source.url is None:
            from doughflow.data.synthetic.pizza import TOPPING_STYLES

            menu = self.labels + (self.data.source.generator.base_menu or [])
            unknown = sorted({label for label in menu if label not in TOPPING_STYLES})
            if unknown:
                raise ValueError(
                    f"labels {unknown} cannot be drawn by the built-in generator "
                    f"(labels or data.source.generator.base_menu); known toppings: {sorted(TOPPING_STYLES)}"
                )
        strangers = [label for label in self.data.label_defaults if label not in self.labels]
        if strangers:
            raise ValueError(f"data.label_defaults names {strangers}, which are not labels {self.labels}")
        return self

    @model_validator(mode="after")
    def _adapter_is_registered(self) -> "ExperimentConfig":
        from doughflow.data.adapters import adapter_for

        try:
            adapter = adapter_for(self)
        except (KeyError, ImportError) as error:
            raise ValueError(f"data.adapter: {error.args[0] if error.args else error}") from None
        if adapter.problem == "classification" and self.data.source.url is None:
            raise ValueError(f"data.adapter {self.data.adapter!r} is a classification adapter: set data.source.url "
                             "(the built-in generator draws pizzas with counts)")
        return self

    @field_validator("tune")
    @classmethod
    def _search_space_paths_exist(cls, tune: TuneConfig) -> TuneConfig:
        if tune.search_space or tune.enqueue:
            from doughflow.tuning.space import check_space

            check_space(cls, tune.search_space, tune.enqueue)
        return tune

    def result_storage_url(self) -> str:
        """``orchestration.result_storage``, else DOUGHFLOW_RESULT_STORAGE (set by the compose stack for its
        worker: results on its S3), else a folder beside the runs."""
        return (self.orchestration.result_storage or os.environ.get("DOUGHFLOW_RESULT_STORAGE")
                or str(Path(self.artifacts_dir) / ".prefect-results"))

    def registry_file(self) -> str:
        return self.registry_path or str(Path(self.artifacts_dir) / "registry.sqlite")

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
        detail = item["msg"]
        if item["type"] == "extra_forbidden":
            detail = "unknown field"
        lines.append(f"  {field}: {detail} (got {item.get('input')!r})")
    return "\n".join(lines)


def validate_config(raw: dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment, apply ``key=value`` overrides and validate, before any work."""
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
    return validate_config(raw, source=_display_path(path))


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def dump_config(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
