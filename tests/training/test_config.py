"""Run configuration: overrides, types and helpful errors (pure unit tests)."""

from __future__ import annotations

import pytest

from trainables.config import RunConfig
from trainables.errors import ConfigError


def test_overrides_parse_typed_values() -> None:
    config = RunConfig().with_overrides(
        ["train.lr=2e-3", "train.epochs=5", "method.name=baseline", "data.val_list=null", "train.iters_per_epoch=7"]
    )
    assert config.train.lr == 0.002 and config.train.epochs == 5
    assert config.passion.enabled is False and config.data.val_list is None
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.epoch=3", r"unknown key train\.epoch \(did you mean 'epochs'\?\)"),
        ("trian.epochs=3", r"unknown config section 'trian' .*did you mean 'train'"),
        ("train.epochs=three", r"train\.epochs must be int, got 'three'"),
        ("train.epochs=2.5", r"train\.epochs must be int, got 2\.5"),
        ("train.mask_type=xdt", r"train\.mask_type must be one of idt, idt_drop, pdt"),
        ("train.lr=0", r"train\.lr must be > 0"),
        ("train.rotation_fill=zero", r"train\.rotation_fill must be one of reference, background, got 'zero'"),
        ("passion.temperature=-1", r"passion\.temperature has an invalid value"),
        ("epochs=3", r"--set 'epochs=3': expected section\.key=value"),
        ("train.=3", r"--set 'train\.=3': expected key\.path=value"),
        ("model.width=null", r"model\.width must not be null"),
    ],
)
def test_bad_overrides_name_the_key(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig().with_overrides([assignment])
