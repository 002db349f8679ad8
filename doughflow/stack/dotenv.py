"""Writes the stack's ``.env`` from ``.env.example``, with a fresh random value for every secret.

The compose file holds no credential: Postgres' password, the Prefect API's auth string and the S3
key come from ``.env``, which git ignores. In ``.env.example`` every secret is left empty, and
compose refuses to start while one is empty (``${VAR:?...}``), so a copied template never runs with
a published password. This fills them in:

    python3 -m doughflow.stack.dotenv        # or: make stack-env   (refuses to overwrite .env)

Secrets are 32 random bytes as hex: safe inside a URL (Postgres' password sits in Prefect's
database URL) and in an HTTP basic-auth string. The module uses the standard library only, so it
runs with any Python 3.11, before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def _secret() -> str:
    return secrets.token_hex(32)


# The secrets .env.example leaves empty, and how each is made. PREFECT_API_AUTH_STRING is
# "user:password" (HTTP basic auth); the server's PREFECT_SERVER_API_AUTH_STRING takes the same value.
GENERATORS: dict[str, Callable[[], str]] = {
    "POSTGRES_PASSWORD": _secret,
    "PREFECT_API_AUTH_STRING": lambda: f"doughflow:{_secret()}",
    "AWS_SECRET_ACCESS_KEY": _secret,
}


def read_values(text: str) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv text (comments and blank lines skipped)."""
    return {m["key"]: m["value"] for line in text.splitlines() if (m := LINE.match(line.strip()))}


def fill(template: str) -> str:
    """``template`` with every empty secret given a fresh value; other lines unchanged. Raises
    when the template leaves a value empty that no generator makes."""
    lines = []
    for line in template.splitlines():
        match = LINE.match(line.strip())
        if match and not match["value"]:
            if match["key"] not in GENERATORS:
                raise ValueError(f"{match['key']} is empty in the template and no secret generator makes it")
            line = f"{match['key']}={GENERATORS[match['key']]()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_env(target: Path, template: Path) -> Path:
    """``target`` made from ``template``, readable by its owner only. Never overwrites: a second
    set of secrets would lock the stack out of its own Postgres volume."""
    text = fill(template.read_text())
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / ".env")
    parser.add_argument("--template", type=Path, default=ROOT / ".env.example")
    args = parser.parse_args(argv)
    try:
        write_env(args.output, args.template)
    except FileExistsError:
        print(
            f"{args.output} exists: keeping it (delete it first to make new secrets, and the stack's "
            "Postgres volume with it: `docker compose down -v`)",
            file=sys.stderr,
        )
        return 1
    print(f"wrote {args.output} with fresh secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
