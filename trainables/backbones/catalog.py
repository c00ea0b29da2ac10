"""The built-in backbones and the options each can take, importable without torch.

Specs (``passion-sweep run --dry-run``, ``status``) and ``--help`` check backbone names,
widths and patch sizes without building anything, so they must not pay for torch
(seconds on a small machine). This module is where those facts live: each built-in
backbone class takes its :class:`BackboneLimits` from its entry here when it registers
(see :func:`~trainables.backbones.base.register_backbone`).
"""

from __future__ import annotations

from dataclasses import dataclass

from trainables.errors import ConfigError, did_you_mean

__all__ = ["BackboneLimits", "BUILT_IN", "built_in_names", "check_backbone_options"]


@dataclass(frozen=True)
class BackboneLimits:
    """The widths and patch sizes a backbone can take.

    Attributes:
        size_divisor: patch edges must be multiples of this (the total downsampling).
        min_width: smallest base width whose every layer keeps at least one channel.
    """

    size_divisor: int = 8
    min_width: int = 1

    def check(self, label: str, *, width: int, patch_size: int) -> None:
        """Refuse a width or patch size (``label`` names the backbone in the message).

        Raises:
            ConfigError: if ``width`` is below :attr:`min_width`, or see :meth:`check_patch_size`.
        """
        if width < self.min_width:
            raise ConfigError(f"width must be >= {self.min_width} for {label}, got {width}")
        self.check_patch_size(label, patch_size)

    def check_patch_size(self, label: str, patch_size: int) -> None:
        """Refuse a training or inference patch edge.

        Raises:
            ConfigError: unless ``patch_size`` is a multiple of :attr:`size_divisor` and
                at least twice it (a one-voxel bottleneck can be neither instance-normalised
                nor reflect-padded).
        """
        smallest = 2 * self.size_divisor
        if patch_size < smallest or patch_size % self.size_divisor:
            raise ConfigError(
                f"patch_size must be a multiple of {self.size_divisor} and at least {smallest} for {label}, "
                f"got {patch_size}"
            )


# Registered name to (module under trainables.backbones defining it, its limits).
BUILT_IN: dict[str, tuple[str, BackboneLimits]] = {
    # The region probability heads reduce the finest level's channels by 4.
    "rfnet": ("rfnet", BackboneLimits(size_divisor=8, min_width=4)),
    # Five levels: four halvings, then the transformer's token grid is patch_size / 16.
    "mmformer": ("mmformer", BackboneLimits(size_divisor=16)),
    "m2ftrans": ("m2ftrans", BackboneLimits(size_divisor=16)),
}


def built_in_names() -> list[str]:
    """Names of the built-in backbones, sorted."""
    return sorted(BUILT_IN)


def check_backbone_options(name: str, *, width: int, patch_size: int) -> None:
    """Refuse an unknown built-in backbone, or a width or patch size it cannot take.

    Raises:
        ConfigError: naming the closest backbone for an unknown name, else see
            :meth:`BackboneLimits.check`.
    """
    if name not in BUILT_IN:
        raise ConfigError(
            f"unknown backbone {name!r}{did_you_mean(name, BUILT_IN)}; available: {', '.join(built_in_names())}"
        )
    BUILT_IN[name][1].check(name, width=width, patch_size=patch_size)
