"""``python -m flows.verify``: the command lives in ``doughflow/cli/verify.py``.

A plain command rather than a Prefect flow: it reads and writes a few local files, needs no Prefect
API, and (for verify) runs where the bundle is consumed, with no orchestration at all."""

from doughflow.cli.verify import main

if __name__ == "__main__":
    raise SystemExit(main())
