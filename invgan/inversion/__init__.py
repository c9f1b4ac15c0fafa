"""Inference-time inversion of real images into a generator latent space."""
