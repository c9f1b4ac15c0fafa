"""BigGAN-style generator and discriminator (with InvGAN latent head) built from small parts."""
