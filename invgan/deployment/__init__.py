"""Inference graphs of a trained model (image -> code, code -> image, image -> reconstruction,
prior sample -> code) written as ONNX or TorchScript files for deployment."""
