"""Lightning callbacks: image grids, run config stored in checkpoints."""
