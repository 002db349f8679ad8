"""The command lines: ``flow.py`` parses ``python -m flows.train|prepare|tune`` arguments and runs the
flow; ``verify.py``, ``compare.py`` and ``review.py`` are the plain commands behind ``python -m
flows.verify|compare|review``. Arguments are parsed before anything heavy is imported."""
