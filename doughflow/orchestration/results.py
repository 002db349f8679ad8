"""Where task results persist, and how: JSON of our own result types, never pickle, read back only
after the record has been checked.

Prefect's default result serializer is pickle, and a stored record names the serializer it is read
with, so a record planted in the result storage (a shared folder, a bucket) that says "pickle", or
"json" with an ``object_decoder`` of the planter's choosing, runs code when Prefect reads it. So:

- every record we write uses :class:`TrustedJSONSerializer` (type ``doughflow-json``): plain JSON, with
  our dataclasses tagged by class name. Its decoder ignores whatever decoder a record names and rebuilds
  only dataclasses defined in ``doughflow`` (and paths); any other class name is refused, never imported.
- the storage blocks we bind (:class:`TrustedLocalFileSystem`, :class:`TrustedRemoteFileSystem`) check
  every record before Prefect sees its bytes: a record that is not JSON naming our serializer raises
  :class:`UntrustedResultError` (naming the file) instead of being deserialised. That covers every read
  Prefect makes, including a retried flow run that picks up a finished sub-flow's result.
- the cache lookup (``stage_tasks.live_cache_key``) reads a record first with :func:`read_trusted`:
  a bad one is a cache miss with a warning, and the stage recomputes under a fresh key.

Measured (``python benchmarks/result_records.py``, 2-core machine): checking and decoding a record
costs 0.65 ms for a 25 kB fetch manifest of 100 shards, 1.1 ms for a 47 kB training result with 2,000
step losses, 2.2 ms for a 75 kB split result; the tiny flow's data-stage records (2-7 kB) take under
0.2 ms. The first record of each type in a process also builds its pydantic adapter (2-8 ms, once),
which Prefect's own read then reuses. Next to the seconds of any stage it lets a run skip, that is noise.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import importlib
import json
import pathlib
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.exceptions import ObjectAlreadyExists
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.serializers import JSONSerializer
from pydantic import Field, TypeAdapter

SERIALIZER_TYPE = "doughflow-json"
TRUSTED_PREFIX = "doughflow."
_PATH_TYPES = {"pathlib.Path": Path, "pathlib.PosixPath": Path, "pathlib.PurePosixPath": pathlib.PurePosixPath}


class UntrustedResultError(ValueError):
    """A stored result record that we did not write (or that was altered): never deserialised."""


def encode_object(obj: Any) -> Any:
    """``json.dumps`` default: our dataclasses tagged with their class, paths, numpy scalars and sets."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        return {
            "__class__": f"{cls.__module__}.{cls.__qualname__}",
            "data": {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)},
        }
    if isinstance(obj, pathlib.PurePath):
        return {"__class__": f"pathlib.{type(obj).__name__}", "data": str(obj)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, BaseException):
        kind = type(obj)
        return {"__exc_type__": f"{kind.__module__}.{kind.__qualname__}", "message": str(obj)}
    if hasattr(obj, "model_dump"):  # pydantic models (configs): written for the record, never rebuilt
        kind = type(obj)
        return {"__class__": f"{kind.__module__}.{kind.__qualname__}", "data": obj.model_dump(mode="json")}
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable as a task result")


def _trusted_class(name: str) -> type:
    """The dataclass ``name`` (module.Qualname) when it is one of ours; never imports anything else."""
    module_name, _, qualname = name.rpartition(".")
    if not module_name.startswith(TRUSTED_PREFIX) or not qualname.isidentifier():
        raise UntrustedResultError(f"result names class {name!r}, which is not a doughflow result type")
    try:
        cls = getattr(importlib.import_module(module_name), qualname)
    except (ImportError, AttributeError):
        raise UntrustedResultError(f"result names class {name!r}, which does not exist") from None
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise UntrustedResultError(f"result names {name!r}, which is not a doughflow result dataclass")
    return cls


_ADAPTERS: dict[type, TypeAdapter] = {}


def decode_object(value: dict[str, Any]) -> Any:
    """``json.loads`` object hook, the inverse of :func:`encode_object` for the types it allows."""
    if "__class__" in value and set(value) == {"__class__", "data"}:
        name = value["__class__"]
        if name in _PATH_TYPES:
            return _PATH_TYPES[name](value["data"])
        cls = _trusted_class(str(name))
        if cls not in _ADAPTERS:  # building one costs ~0.1 s: once per type and process
            _ADAPTERS[cls] = TypeAdapter(cls)
        return _ADAPTERS[cls].validate_python(value["data"])
    if "__exc_type__" in value and set(value) == {"__exc_type__", "message"}:
        return _exception(str(value["__exc_type__"]), str(value["message"]))
    return value


def _exception(name: str, message: str) -> Exception:
    """A failed task's stored exception: builtins and our own exception classes by name, anything else
    as a RuntimeError naming it (nothing outside doughflow is imported)."""
    module_name, _, qualname = name.rpartition(".")
    cls = None
    if module_name == "builtins":
        cls = getattr(builtins, qualname, None)
    elif module_name.startswith(TRUSTED_PREFIX) and qualname.isidentifier():
        try:
            cls = getattr(importlib.import_module(module_name), qualname, None)
        except ImportError:
            cls = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:  # noqa: BLE001 - an exception class with other arguments: the message still counts
            pass
    return RuntimeError(f"{name}: {message}")


class TrustedJSONSerializer(JSONSerializer):
    """Prefect's JSON serializer with our encoder and decoder, whatever a stored record says."""

    type: str = Field(default=SERIALIZER_TYPE, frozen=True)
    object_encoder: str | None = Field(default="doughflow.orchestration.results.encode_object")
    object_decoder: str | None = Field(default="doughflow.orchestration.results.decode_object")

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, default=encode_object).encode()

    def loads(self, blob: bytes) -> Any:
        return json.loads(blob.decode(), object_hook=decode_object)


RESULT_SERIALIZER = TrustedJSONSerializer()


def check_record(content: bytes, where: str) -> bytes:
    """The serialized result a stored file holds, once it is known to be safe to hand to Prefect; else
    UntrustedResultError. A record (what Prefect parses as one: a JSON object with ``metadata``, or the
    legacy ``serializer``/``data`` shape) must name our serializer, or Prefect would load it with the one
    it names. A bare payload (a flow's own result, stored without a wrapper) must be JSON: Prefect decodes
    it with the serializer its database recorded for that result, which is ours."""
    try:
        parsed = json.loads(content)
    except (UnicodeDecodeError, ValueError):
        raise UntrustedResultError(f"{where}: result record is not JSON (a pickle or a damaged file)") from None
    if not (isinstance(parsed, dict) and ("metadata" in parsed or "serializer" in parsed)):
        return content
    metadata = parsed.get("metadata") if "metadata" in parsed else parsed
    serializer = metadata.get("serializer") if isinstance(metadata, dict) else None
    kind = serializer.get("type") if isinstance(serializer, dict) else None
    result = parsed.get("result", parsed.get("data"))
    if kind != SERIALIZER_TYPE or not isinstance(result, str):
        raise UntrustedResultError(f"{where}: result record names serializer {kind!r}, not {SERIALIZER_TYPE!r}")
    return result.encode()


def read_trusted(content: bytes, where: str) -> Any:
    """The result a stored file holds, checked and decoded by us alone; UntrustedResultError otherwise."""
    payload = check_record(content, where)
    try:
        return RESULT_SERIALIZER.loads(payload)
    except UntrustedResultError as error:
        raise UntrustedResultError(f"{where}: {error}") from None
    except (ValueError, TypeError) as error:
        raise UntrustedResultError(f"{where}: result does not decode ({type(error).__name__}: {error})") from None


def matches(value: Any, expected: Any) -> bool:
    """Whether a decoded result is an instance of the stage's declared return type (classes, Optional
    and unions of them; generics by their origin)."""
    import types
    import typing

    if expected is None or expected is type(None):
        return value is None
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arm) for arm in typing.get_args(expected))
    if origin is not None:
        return isinstance(value, origin) if isinstance(origin, type) else True
    if expected is Any or not isinstance(expected, type):
        return True
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)


class _CheckedReads:
    """Every read of a record is checked before Prefect deserialises it (see the module docstring)."""

    def _check(self, content: bytes, path: str) -> bytes:
        check_record(content, f"{getattr(self, 'basepath', '')}/{path}")
        return content


class TrustedLocalFileSystem(_CheckedReads, LocalFileSystem):
    """A local result folder whose reads refuse records we did not write."""

    _block_type_name: ClassVar[str] = "Doughflow Trusted Results Local"

    async def aread_path(self, path: str) -> bytes:
        return self._check(await LocalFileSystem.aread_path(self, path), path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:  # type: ignore[override]
        content = LocalFileSystem.read_path(self, path, _sync=True)  # type: ignore[call-arg]
        return self._check(cast(bytes, content), path)


class TrustedRemoteFileSystem(_CheckedReads, RemoteFileSystem):
    """A result prefix on an fsspec URL (s3://...) whose reads refuse records we did not write."""

    _block_type_name: ClassVar[str] = "Doughflow Trusted Results Remote"

    async def aread_path(self, path: str) -> bytes:
        return self._check(await RemoteFileSystem.aread_path(self, path), path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:  # type: ignore[override]
        content = RemoteFileSystem.read_path(self, path, _sync=True)  # type: ignore[call-arg]
        return self._check(cast(bytes, content), path)


def result_storage(url: str) -> TrustedLocalFileSystem | TrustedRemoteFileSystem:
    """A saved Prefect storage block for a local folder or any fsspec URL (s3://, gs://...).
    Flows accept only saved blocks; the name derives from the location, so each is saved once."""
    block: TrustedLocalFileSystem | TrustedRemoteFileSystem
    if "://" in url and not url.startswith("file://"):
        block = TrustedRemoteFileSystem(basepath=url.rstrip("/") + "/")
        location = block.basepath
    else:
        local = Path(url.removeprefix("file://")).expanduser().resolve()
        local.mkdir(parents=True, exist_ok=True)
        block = TrustedLocalFileSystem(basepath=str(local))
        location = str(local)
    name = "doughflow-results-" + hashlib.sha256(location.encode()).hexdigest()[:16]
    try:  # saved by an earlier run: one read (about 0.05 s) instead of a save (0.15 s, five requests)
        saved = type(block).load(name)  # called from sync code, Prefect's dispatch runs it synchronously
        if isinstance(saved, type(block)) and saved.model_dump() == block.model_dump():
            return saved
    except ValueError:  # not saved yet (Prefect: "Unable to find block document named ...")
        pass
    for attempt in range(3):
        try:
            block.save(name, overwrite=True)
            break
        except ObjectAlreadyExists:
            # Two runs starting at once on a fresh server both register our block type (or its schema);
            # the loser's next attempt finds it registered (measured: the fault suite's two parallel runs).
            if attempt == 2:
                raise
    return block
