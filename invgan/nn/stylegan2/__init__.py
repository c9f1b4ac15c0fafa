"""StyleGAN2 generator and discriminator (with InvGAN latent head) in pure PyTorch.

State-dict names follow the widely used rosinality port, so its `g_ema` weights load strictly.
"""
