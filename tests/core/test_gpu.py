"""The CUDA path: skipped without a GPU; the same code runs on CPU everywhere else in the suite."""

from __future__ import annotations

import pytest
import torch
from tiny_models import save_tiny_bert

from alignscope.core.datasets import load_dataset
from alignscope.core.devices import resolve_device, resolve_dtype
from alignscope.core.extract import extract_features
from alignscope.core.metrics.registry import compute
from alignscope.core.models import hub_model_spec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_auto_device_picks_cuda_and_half_precision_is_used_there():
    device = resolve_device("auto")
    assert device.type == "cuda"
    assert resolve_dtype("bfloat16", device) == torch.bfloat16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.float32


@pytest.mark.usefixtures("warm_cache_dir")
def test_gpu_features_match_cpu_features():
    dataset = load_dataset("digits", n=256)
    cpu = extract_features("digits-cnn-s0", dataset, device="cpu")
    gpu = extract_features("digits-cnn-s0", dataset, device="cuda")
    for a, b in zip(cpu.values, gpu.values):
        assert b.device.type == "cpu"  # streamed back per batch
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_bf16_text_features_stay_close_to_float32(tmp_path):
    spec = hub_model_spec(str(save_tiny_bert(tmp_path / "bert")), modality="text")
    dataset = load_dataset("sentences", n=64)
    full = extract_features(spec, dataset, device="cuda", dtype="float32")
    half = extract_features(spec, dataset, device="cuda", dtype="bfloat16")
    assert compute("linear_cka", full.values[-1], half.values[-1]) > 0.99


@pytest.mark.parametrize("metric", ["mutual_knn", "cknna", "debiased_cka", "linear_cka"])
def test_metrics_on_gpu_tensors_equal_the_cpu_values(metric):
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(512, 64, generator=generator)
    b = a @ torch.randn(64, 48, generator=generator) + 0.5 * torch.randn(512, 48, generator=generator)
    params = {"k": 10} if "knn" in metric else {}
    assert compute(metric, a.cuda(), b.cuda(), **params) == pytest.approx(compute(metric, a, b, **params), abs=1e-4)
