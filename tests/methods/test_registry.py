"""The method registry and the coefficient sections."""

from __future__ import annotations

import dataclasses

import pytest

from trainables.errors import ConfigError
from trainables.methods.coefficients import MMParetoConfig, ModDropConfig, OGMGEConfig, PMRConfig, search_space
from trainables.methods.registry import method_info, method_names
from trainables.passion.config import PassionConfig


def test_unknown_method_names_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'ogmge' \(did you mean 'ogm-ge'\?\)"):
        method_info("ogmge")


def test_every_method_fixes_only_existing_passion_keys() -> None:
    keys = {field.name for field in dataclasses.fields(PassionConfig)}
    for name in method_names():
        info = method_info(name)
        assert set(info.passion) <= keys, name
        dataclasses.replace(PassionConfig(), **info.passion)  # valid values


@pytest.mark.parametrize("section", [ModDropConfig, PMRConfig, OGMGEConfig, MMParetoConfig])
def test_coefficients_validate_and_declare_a_search_range_inside_their_valid_values(section: type) -> None:
    for key, distribution in search_space(section).items():
        name = key.split(".", 1)[1]
        bounds = distribution.get("choices") or [distribution["low"], distribution["high"]]
        for value in bounds:
            section(**{name: value})
        if "low" in distribution:
            with pytest.raises(ConfigError, match=rf"{section.SECTION}\.{name} must be in"):
                section(**{name: -1.0})


def test_moddrop_rate_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"moddrop.rate must be in \[0.0, 1.0\)"):
        ModDropConfig(rate=1.0)
