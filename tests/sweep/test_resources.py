"""GPU shares of trials: what Tune is asked for, the memory cap, and the error when a trial exceeds it.

Pure unit tests: ``torch.cuda`` is replaced where a GPU would be needed.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from ray import tune

from passion_sweep.sweep import trial
from passion_sweep.sweep.launcher import trial_resources
from passion_sweep.sweep.spec import ResourcesSpec
from trainables.errors import TrainingError


@pytest.mark.parametrize(
    ("resources", "gpu"),
    [(ResourcesSpec(cpu=2, trials_per_gpu=4), 0.25), (ResourcesSpec(gpu=0.5), 0.5), (ResourcesSpec(), 0)],
)
def test_tune_gets_the_gpu_share_of_each_trial(resources: ResourcesSpec, gpu: float) -> None:
    trainable = tune.with_resources(lambda config: None, trial_resources(resources))
    requested = trainable._resources.required_resources  # Tune's placement request for each trial
    assert requested.get("GPU", 0) == gpu and requested["CPU"] == resources.cpu


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A visible 80 GiB GPU; returns the memory fractions set on it."""
    fractions: list[float] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda fraction: fractions.append(fraction))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=80 * 2**30))
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    return fractions


def test_a_shared_gpu_caps_the_trials_memory_to_its_share(fake_cuda: list[float]) -> None:
    for gpus in (0.25, 1.0, 0.0):
        trial._configure_torch(cpus=1, gpus=gpus)
    assert fake_cuda == [0.25], "only a fraction of a GPU is capped"


def test_out_of_memory_names_the_share_and_the_settings_to_change(fake_cuda: list[float]) -> None:
    with pytest.raises(TrainingError) as caught, trial._gpu_memory_errors(0.25):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    message = str(caught.value)
    assert "ran out of CUDA memory within its share of the GPU (0.25 x 80.0 GiB = 20.0 GiB" in message
    assert "trials_per_gpu" in message and "model.patch_size" in message and "\n" not in message


def test_out_of_memory_on_a_whole_gpu_suggests_a_smaller_step(fake_cuda: list[float]) -> None:
    whole_gpu = r"on a whole GPU \(80\.0 GiB\): lower model\.patch_size"
    with pytest.raises(TrainingError, match=whole_gpu), trial._gpu_memory_errors(1.0):
        raise torch.OutOfMemoryError("CUDA out of memory")


def test_hd95_runs_beside_inference_by_default_only_when_a_gpu_infers(fake_cuda: list[float]) -> None:
    assert trial._hd95_workers(None, cpus=4, gpus=0.25) == 4, "a GPU trial's CPUs are free for HD95"
    assert trial._hd95_workers(None, cpus=4, gpus=0) == 0, "on CPU, inference uses the CPUs"
    assert trial._hd95_workers(2, cpus=4, gpus=0) == 2, "eval.hd95_workers wins"
