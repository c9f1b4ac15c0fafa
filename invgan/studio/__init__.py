"""The editing studio: a local web page (`python -m invgan.studio`) that inverts an uploaded
image with each inversion method and edits its code with the apply command's applications."""
