"""LightningModules, one per training recipe."""
