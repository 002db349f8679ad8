"""Tracking outside doughflow's own registry: MLflow runs, logged models and registered versions."""
