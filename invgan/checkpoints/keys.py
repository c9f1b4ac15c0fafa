"""Names of the entries invgan adds to a Lightning checkpoint (and to exported metadata)."""

# The run's composed Hydra config, as unresolved YAML text.
CONFIG_KEY = "invgan_config"
# Encoder runs: the Hydra config of the frozen generator's networks, so that a checkpoint
# rebuilds them without the weights file they were first loaded from.
GENERATOR_ARCHITECTURE_KEY = "frozen_generator_architecture"
