"""CUDA backend settings: TF32 and cuDNN benchmark on by default, settable, applied in every
training process and recorded."""

from __future__ import annotations

import pytest
import torch

from invgan.callbacks.cuda_backend import CudaBackend
from invgan.utils.cuda_backend import apply_cuda_settings, cuda_settings
from tests.conftest import compose_config


@pytest.fixture
def restored_backend():
    """Put PyTorch's flags back after the test."""
    before = cuda_settings()
    yield
    apply_cuda_settings(before["tf32_matmul"], before["cudnn_benchmark"])
    torch.backends.cudnn.allow_tf32 = before["tf32_cudnn"]


@pytest.mark.parametrize("config", ["train", "evaluate"])
def test_tf32_and_cudnn_benchmark_are_the_default(config, tmp_path):
    overrides = ["ckpt_path=unused.ckpt"] if config == "evaluate" else []
    cfg = compose_config(config, overrides, tmp_path)
    assert cfg.cuda == {"tf32": True, "cudnn_benchmark": True}


def test_settings_are_applied_and_reported(restored_backend):
    assert apply_cuda_settings(tf32=True, cudnn_benchmark=True) == {
        "tf32_matmul": True,
        "tf32_cudnn": True,
        "cudnn_benchmark": True,
    }
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.benchmark
    apply_cuda_settings(tf32=False, cudnn_benchmark=False)
    assert cuda_settings() == {"tf32_matmul": False, "tf32_cudnn": False, "cudnn_benchmark": False}


def test_callback_applies_them_in_each_process(restored_backend):
    apply_cuda_settings(tf32=False, cudnn_benchmark=False)
    CudaBackend(tf32=True, cudnn_benchmark=True).setup(None, None, "fit")  # type: ignore[arg-type]
    assert cuda_settings()["tf32_matmul"] and cuda_settings()["cudnn_benchmark"]
