"""Applications of inversion that write images and codes: tiled reconstruction, de-blurring,
frame interpolation. Each is a `run_*` function that `python -m invgan.apply` calls."""
