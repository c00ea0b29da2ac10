"""The token-level building blocks of the transformer backbones."""
from __future__ import annotations

import pytest
import torch

from trainables.backbones.transformer import (
    LearnedPositionalEmbedding,
    Transformer,
    key_attention_mask,
    tokens_to_volume,
    volume_to_tokens,
)


def test_tokens_round_trip_in_voxel_order() -> None:
    volume = torch.arange(2 * 3 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 2, 3, 4)
    tokens = volume_to_tokens(volume)
    assert tokens.shape == (2, 24, 3)
    torch.testing.assert_close(tokens[1, 5], volume[1, :, 0, 1, 1])  # voxel (0, 1, 1) is token 1*4 + 1
    torch.testing.assert_close(tokens_to_volume(tokens, (2, 3, 4)), volume)


def test_masked_keys_do_not_reach_the_other_tokens() -> None:
    torch.manual_seed(0)
    transformer = Transformer(16, depth=2, heads=4, mlp_dim=32).eval()
    tokens = torch.randn(2, 6, 16)
    keys = torch.tensor([[True, True, True, False, False, False], [True] * 6])
    changed = tokens.clone()
    changed[0, 3:] = 1e4 * torch.randn(3, 16)
    mask = key_attention_mask(keys)
    before, after = transformer(tokens, mask=mask), transformer(changed, mask=mask)
    torch.testing.assert_close(after[0, :3], before[0, :3])
    torch.testing.assert_close(after[1], before[1])
    assert not torch.allclose(transformer(changed)[0, :3], before[0, :3]), "without the mask they would"


def test_positional_embedding_follows_its_grid() -> None:
    embedding = LearnedPositionalEmbedding(5, 8, count=4)
    assert embedding().shape == (4, 125, 8) and embedding((5, 5, 5)) is embedding.weight
    with torch.no_grad():
        embedding.weight.copy_(torch.randn_like(embedding.weight))
    resampled = embedding((3, 4, 5))
    assert resampled.shape == (4, 60, 8)
    torch.testing.assert_close(resampled[:, 0], embedding.weight[:, 0])  # align_corners keeps the corners
    with pytest.raises(ValueError, match=r"grid must be three positive edges, got \(5, 5\)"):
        LearnedPositionalEmbedding((5, 5), 8)
