"""HD95 beside inference: the distances of a case's 15 subset predictions are computed in
worker processes while the model predicts the next case.

On a GPU, inference of a 128^3 volume over the 15 subsets takes seconds to tens of
seconds, and HD95 of its 60 (subset, region) pairs about as long again on one CPU core;
computed serially, evaluation costs their sum. Worker processes, not threads: not every step
of HD95 (numpy, ``scipy.ndimage``'s erosion, the k-d tree) releases the GIL, and
whatever holds it delays the thread that launches the GPU's kernels. The workers are started with ``spawn``, because the
parent may hold CUDA or a Ray worker's threads, which ``fork`` does not carry over
safely. Each worker runs :func:`~trainables.evaluation.metrics.brats_hd95` on the same
arrays as the serial path, so the numbers are identical.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from types import TracebackType

import numpy as np
import torch
from torch import Tensor

from trainables.errors import ConfigError
from trainables.evaluation.conventions import HD95Convention, HD95Percentile
from trainables.evaluation.metrics import brats_hd95

__all__ = ["HD95Workers"]


def _subset_hd95(
    prediction: np.ndarray, truth: np.ndarray, percentile: HD95Percentile, convention: HD95Convention
) -> np.ndarray:
    """The four regions' HD95 of one subset's ``HWD`` prediction (runs in a worker)."""
    distances = brats_hd95(
        torch.from_numpy(prediction)[None],
        torch.from_numpy(truth)[None],
        percentile=percentile,
        empty_convention=convention,
    )
    return distances[0].numpy()


def _one_thread() -> None:
    torch.set_num_threads(1)  # the workers share the CPUs; one thread each


class HD95Workers:
    """Computes HD95 of each subset prediction, in ``workers`` processes or (0) at once.

    Use as a context manager; :meth:`submit` returns one future per subset, whose result
    is that subset's ``4`` distances (WT, TC, ET, ETpp).
    """

    def __init__(self, workers: int, *, percentile: HD95Percentile, convention: HD95Convention) -> None:
        if workers < 0:
            raise ConfigError(f"hd95_workers must be >= 0 (0 computes HD95 in this process), got {workers}")
        self._workers = workers
        self._percentile: HD95Percentile = percentile
        self._convention: HD95Convention = convention
        self._pool: Executor | None = None

    def __enter__(self) -> HD95Workers:
        if self._workers:
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=error is not None)
            self._pool = None

    def submit(self, predictions: Tensor, truth: Tensor) -> list[Future[np.ndarray]]:
        """HD95 of every ``SHWD`` label map in ``predictions`` against the ``HWD`` ``truth``."""
        truth_array = truth.numpy(force=True)
        futures = []
        for prediction in predictions.numpy(force=True):
            if self._pool is None:
                done: Future[np.ndarray] = Future()
                done.set_result(_subset_hd95(prediction, truth_array, self._percentile, self._convention))
                futures.append(done)
            else:
                futures.append(
                    self._pool.submit(_subset_hd95, prediction, truth_array, self._percentile, self._convention)
                )
        return futures
