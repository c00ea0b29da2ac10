"""How far each modality leads the others: the discrepancy ratio of OGM-GE and PMR, for K modalities.

Both papers compare two modalities a and v by the ratio of their summed scores over a
batch, ``rho_a = sum_i s_i^a / sum_i s_i^v``. With four modalities, some of them
missing per case, the ratio of modality m here compares it with the mean score of the
*other modalities present in the same case*, over the cases that have m and at least
one other modality:

    rho_m = sum_{b in B_m} s[b, m] / sum_{b in B_m} mean_{m' != m, present in b} s[b, m']

For two modalities present in every case this is exactly the papers' ratio. A modality
with no case to compare (alone in every case that has it, or absent) gets ``rho_m = 1``:
it neither leads nor lags, so the methods leave it as the baseline does.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["discrepancy_ratio"]


def discrepancy_ratio(scores: Tensor, present: Tensor) -> Tensor:
    """Per-modality ratio of a modality's score to the mean score of the others present with it.

    Args:
        scores: ``BK`` per-case scores of each modality (e.g. mean true-class probability
            of its unimodal prediction); ignored where not ``present``.
        present: ``BK`` bool, which modalities each case has.

    Returns:
        ``K`` ratios ``rho_m`` (1 where modality m has no case to compare); ``rho_m > 1``:
        m leads the modalities it is trained with.
    """
    weights = present.to(scores.dtype)
    scores = torch.where(present, scores, 0.0)
    others = weights.sum(dim=1, keepdim=True) - weights  # B K: other modalities present
    comparable = present & (others > 0)
    others_mean = (scores.sum(dim=1, keepdim=True) - scores) / others.clamp(min=1)
    own = torch.where(comparable, scores, 0.0).sum(dim=0)
    reference = torch.where(comparable, others_mean, 0.0).sum(dim=0)
    defined = comparable.any(dim=0) & (reference > 0)
    return torch.where(defined, own / torch.where(defined, reference, 1.0), 1.0)
