"""The checkpoint format and its keys, safe loading, atomic writes and pretrained imports.

A low-level package: it imports nothing from `modules/`, `callbacks/` or `evaluation/`.
"""
