"""The step relative preference where the reference's is undefined."""

from __future__ import annotations

import torch

from trainables.passion.preference import step_relative_preference

MASK = torch.tensor([[True, True, False, True], [False, True, False, False]])
DISTANCE = torch.tensor([[0.3, 0.1, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0]])  # sample 1: one modality, student = teacher


def test_a_one_modality_case_makes_the_step_nan_as_the_reference() -> None:
    preference = step_relative_preference(DISTANCE, MASK)
    assert preference.isnan().all()
    assert not (preference > 0).any()  # no modality lags: no uni-modal or prototype term


def test_per_sample_leaves_only_that_case_out() -> None:
    preference = step_relative_preference(DISTANCE, MASK, per_sample=True)
    expected = step_relative_preference(DISTANCE[:1], MASK[:1])
    torch.testing.assert_close(preference, expected)
    torch.testing.assert_close(expected, torch.tensor([0.5, -0.5, 0.0, 0.0]))
