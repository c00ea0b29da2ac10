"""The torch-free catalog of built-in backbones agrees with the registered classes."""

from __future__ import annotations

import pytest

from trainables.backbones import backbone_class, backbone_names
from trainables.backbones.catalog import BUILT_IN, check_backbone_options
from trainables.errors import ConfigError


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_each_built_in_is_registered_with_its_catalog_limits(name: str) -> None:
    assert name in backbone_names()
    cls = backbone_class(name)
    limits = BUILT_IN[name][1]
    assert (cls.size_divisor, cls.min_width) == (limits.size_divisor, limits.min_width)
    assert cls.__module__ == f"trainables.backbones.{BUILT_IN[name][0]}"


def test_catalog_check_names_the_backbone_and_the_limit() -> None:
    with pytest.raises(ConfigError, match=r"unknown backbone 'mmformr' \(did you mean 'mmformer'\?\)"):
        check_backbone_options("mmformr", width=8, patch_size=80)
    with pytest.raises(ConfigError, match=r"patch_size must be a multiple of 16 and at least 32 for m2ftrans, got 40"):
        check_backbone_options("m2ftrans", width=8, patch_size=40)
    check_backbone_options("rfnet", width=4, patch_size=16)
