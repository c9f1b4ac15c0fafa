"""Networks: mapping networks, generators and discriminators with a latent head."""
