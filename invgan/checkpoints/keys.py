"""Names of the entries invgan adds to a Lightning checkpoint (and to exported metadata)."""

# The run's composed Hydra config, as unresolved YAML text.
CONFIG_KEY = "invgan_config"
# Encoder runs: the Hydra config of the frozen generator's networks, so that a checkpoint
# rebuilds them without the weights file they were first loaded from.
GENERATOR_ARCHITECTURE_KEY = "frozen_generator_architecture"
# e4e runs: the latent discriminator's pools of past codes, so that a resumed run draws the
# same discriminator inputs it would have drawn uninterrupted.
E4E_W_POOLS_KEY = "e4e_w_pools"
