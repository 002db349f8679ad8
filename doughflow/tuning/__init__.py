"""Hyper-parameter tuning with Optuna: search space, study, trials' pruning monitor, report."""
