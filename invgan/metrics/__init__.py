"""Evaluation metrics: FID against cached real statistics, reconstruction MAE, run time."""
