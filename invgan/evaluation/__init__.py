"""Evaluation behind `evaluate.py`: loading, the metrics, reports and comparisons."""
