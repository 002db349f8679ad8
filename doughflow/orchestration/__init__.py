"""The one place the library talks to Prefect.

Everything else in ``doughflow`` is plain Python that tests call directly and that runs with no
Prefect API at all (the GPU throughput benchmark, a bundle consumer's ``flows.verify``). What needs
Prefect - the stage task decorator with its cache keys, result storage blocks, artifacts, the
current flow run's identity and its earlier attempts - lives here, behind small functions that do
nothing (or return None) outside a flow run. ``make lint`` (import-linter) keeps Prefect imports in
this package, ``flows/`` and ``tasks/``.
"""
