"""``python -m flows.compare``: the command lives in ``doughflow/cli/compare.py``.

A plain command rather than a Prefect flow: it reads and writes a few local files, needs no Prefect
API, and (for verify) runs where the bundle is consumed, with no orchestration at all."""

from doughflow.cli.compare import main

if __name__ == "__main__":
    main()  # exits 2 itself on a bad registry or run id
