"""Loss functions: adversarial, MMD, and latent / feature / pixel reconstruction."""
