"""The code behind train.py, evaluate.py and the `python -m invgan.*` commands."""
