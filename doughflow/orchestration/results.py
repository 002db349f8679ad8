"""Where task results persist: a saved Prefect storage block for a local folder or any fsspec URL."""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect.filesystems import LocalFileSystem, RemoteFileSystem


def result_storage(url: str) -> LocalFileSystem | RemoteFileSystem:
    """A saved Prefect storage block for a local folder or any fsspec URL (s3://, gs://...).
    Flows accept only saved blocks; the name derives from the location, so each is saved once."""
    block: LocalFileSystem | RemoteFileSystem
    if "://" in url and not url.startswith("file://"):
        block = RemoteFileSystem(basepath=url.rstrip("/") + "/")
        location = block.basepath
    else:
        local = Path(url.removeprefix("file://")).expanduser().resolve()
        local.mkdir(parents=True, exist_ok=True)
        block = LocalFileSystem(basepath=str(local))
        location = str(local)
    name = "doughflow-results-" + hashlib.sha256(location.encode()).hexdigest()[:16]
    try:  # saved by an earlier run: one read (about 0.05 s) instead of a save (0.15 s, five requests)
        saved = type(block).load(name)  # called from sync code, Prefect's dispatch runs it synchronously
        if isinstance(saved, type(block)) and saved.model_dump() == block.model_dump():
            return saved
    except ValueError:  # not saved yet (Prefect: "Unable to find block document named ...")
        pass
    block.save(name, overwrite=True)
    return block
