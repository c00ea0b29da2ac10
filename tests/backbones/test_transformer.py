"""The token helpers and layers the transformer backbones share."""

from __future__ import annotations

import torch

from trainables.backbones.m2ftrans_transformer import MaskedSelfAttention
from trainables.backbones.mmformer_blocks import SelfAttention
from trainables.backbones.transformer import resample_tokens, tokens_to_volume, volume_to_tokens


def test_tokens_round_trip_in_voxel_order() -> None:
    volume = torch.arange(2 * 3 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 2, 3, 4)
    tokens = volume_to_tokens(volume)
    assert tokens.shape == (2, 24, 3)
    torch.testing.assert_close(tokens[1, 5], volume[1, :, 0, 1, 1])  # voxel (0, 1, 1) is token 1*4 + 1
    torch.testing.assert_close(tokens_to_volume(tokens, (2, 3, 4)), volume)


def test_resampled_tokens_follow_the_grid() -> None:
    tokens = torch.randn(4, 125, 8)
    assert resample_tokens(tokens, (5, 5, 5), (5, 5, 5)) is tokens
    resampled = resample_tokens(tokens, (5, 5, 5), (3, 4, 5))
    assert resampled.shape == (4, 60, 8)
    torch.testing.assert_close(resampled[:, 0], tokens[:, 0])  # align_corners keeps the corners
    torch.testing.assert_close(resampled[:, -1], tokens[:, -1])


def test_fused_and_written_out_attention_agree_when_nothing_is_masked() -> None:
    """mmFormer's fused attention and M2FTrans' weight-returning one share their projections."""
    torch.manual_seed(0)
    fused = SelfAttention(8, heads=2, dropout=0.1).double().eval()
    written_out = MaskedSelfAttention(8, heads=2, dropout=0.1).double().eval()
    written_out.load_state_dict(fused.state_dict())
    tokens = torch.randn(3, 5, 8, dtype=torch.float64)
    output, weights = written_out(tokens, torch.ones(1, 1, 5, 5, dtype=torch.bool))
    torch.testing.assert_close(output, fused(tokens))
    assert weights.shape == (3, 2, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5, dtype=torch.float64))
