"""Encoders from images into a frozen generator's latent space: pSp (IR-SE backbone, feature
pyramid) and the in-domain encoder."""
