"""The backbone contract PASSION relies on, and the registry that names backbones.

A backbone has one encoder per modality, a fusion decoder that takes the encoded
features of all modalities plus a presence mask, and optionally a shared "separate"
decoder applied to one modality's features (RFNet). Running the fusion decoder with a
one-hot mask gives the single-modality student path of that modality.

Shapes: ``B`` batch, ``K`` modalities (4), ``C_l`` channels at level ``l``,
levels finest first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from trainables.backbones.catalog import BUILT_IN, BackboneLimits
from trainables.errors import ConfigError, did_you_mean
from trainables.modalities import NUM_MODALITIES

__all__ = [
    "Backbone",
    "FusionOutput",
    "register_backbone",
    "build_backbone",
    "backbone_class",
    "backbone_names",
]


@dataclass(frozen=True)
class FusionOutput:
    """What the fusion decoder returns.

    Attributes:
        logits: fused logits, ``B4HWD``.
        aux_logits: the deep-supervision logits, in the order and at the sizes the
            backbone's :attr:`Backbone.deep_supervision` declares.
        features: decoder features, finest first; ``features[0]`` (``BCHWD`` at full
            size) is what prototype distillation compares.
    """

    logits: Tensor
    aux_logits: tuple[Tensor, ...]
    features: tuple[Tensor, ...]


class Backbone(nn.Module):
    """Base class of segmentation backbones honouring the PASSION contract.

    Subclasses implement :meth:`encode`, :meth:`fuse` and, if they have one,
    :meth:`separate`. Constructors take keyword-only ``width`` (base channel count)
    and ``patch_size`` (training patch edge; nothing may assume a fixed size).
    """

    has_separate_decoder: bool = False
    # One (upsampling factor to the input size, loss weight) pair per auxiliary output,
    # in the order of ``FusionOutput.aux_logits``. The segmentation loss and the KL
    # distillation of PASSION and of the baseline use exactly these.
    deep_supervision: ClassVar[tuple[tuple[int, float], ...]] = ()
    # Option limits (see BackboneLimits); a built-in backbone gets its catalog entry's on registration.
    size_divisor: int = 8  # input edges must be multiples of this (the total downsampling)
    min_width: int = 1  # smallest base width whose every layer keeps at least one channel

    def __init__(self, *, width: int, patch_size: int) -> None:
        super().__init__()
        self.check_options(width=width, patch_size=patch_size)
        self.width = width
        self.patch_size = patch_size

    @classmethod
    def check_options(cls, *, width: int, patch_size: int) -> None:
        """Refuse a width or patch size this backbone cannot take (checked by specs before a sweep).

        Raises:
            ConfigError: if ``width`` is below :attr:`min_width`, or see :meth:`check_patch_size`.
        """
        cls._limits().check(cls.__name__, width=width, patch_size=patch_size)

    @classmethod
    def check_patch_size(cls, patch_size: int) -> None:
        """Refuse a training or inference patch this backbone cannot take.

        Raises:
            ConfigError: unless ``patch_size`` is a multiple of :attr:`size_divisor` and
                at least twice it (a one-voxel bottleneck can be neither instance-normalised
                nor reflect-padded).
        """
        cls._limits().check_patch_size(cls.__name__, patch_size)

    @classmethod
    def _limits(cls) -> BackboneLimits:
        return BackboneLimits(size_divisor=cls.size_divisor, min_width=cls.min_width)

    @classmethod
    def reference_name_to_ours(cls, name: str) -> str:
        """This backbone's name for the parameter the reference implementation calls ``name``.

        ``name`` is a key of the reference ``Model(num_cls=4).state_dict()`` without the
        ``module.`` prefix of ``DataParallel``. The identity by default, for backbones
        whose modules carry the reference's names.

        Raises:
            KeyError: if the reference parameter has no counterpart here.
        """
        return name

    def encode(self, images: Tensor, modality: int) -> list[Tensor]:
        """Encode one modality.

        Args:
            images: ``N1HWD`` images of modality ``modality``.
            modality: index in ``MODALITIES`` order.

        Returns:
            Per-level features, finest first, each ``NC_lH_lW_lD_l``.
        """
        raise NotImplementedError

    def fuse(self, features: Sequence[Tensor], mask: Tensor) -> FusionOutput:
        """Fusion decoder over the present modalities.

        Args:
            features: per-level features of all modalities, finest first, each
                ``BKC_lH_lW_lD_l``. Absent modalities may hold anything: the decoder
                must ignore them.
            mask: ``BK`` bool, which modalities the decoder may use.
        """
        raise NotImplementedError

    def separate(self, features: Sequence[Tensor]) -> Tensor:
        """Shared separate decoder on one modality's per-level features (``NC_l...``) to ``N4HWD`` logits."""
        raise NotImplementedError(f"{type(self).__name__} has no separate decoder")

    def encode_present(self, images: Tensor, present: Tensor) -> list[Tensor]:
        """Run each modality's encoder only on the samples where it is present.

        Args:
            images: ``BKHWD`` images, modalities in ``MODALITIES`` order.
            present: ``BK`` bool.

        Returns:
            Per-level ``BKC_l...`` features, zero where a modality is absent. This is
            exact wherever absent modalities are masked out downstream.
        """
        batch = images.shape[0]
        levels: list[Tensor] | None = None
        for modality in range(NUM_MODALITIES):
            rows = present[:, modality].nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            encoded = self.encode(images[rows, modality : modality + 1], modality)
            if levels is None:
                levels = [level.new_zeros((batch, NUM_MODALITIES, *level.shape[1:])) for level in encoded]
            for stacked, level in zip(levels, encoded):
                stacked[rows, modality] = level
        if levels is None:
            raise ValueError("encode_present needs at least one present modality")
        return levels

    def forward(self, images: Tensor, mask: Tensor) -> Tensor:
        """Fused logits for ``BKHWD`` images with modalities ``mask`` (``BK``) present."""
        return self.fuse(self.encode_present(images, mask), mask).logits


_REGISTRY: dict[str, type[Backbone]] = {}


def register_backbone(name: str) -> Callable[[type[Backbone]], type[Backbone]]:
    """Class decorator that makes a backbone available to :func:`build_backbone` by ``name``.

    A built-in backbone (one in :data:`~trainables.backbones.catalog.BUILT_IN`) takes
    its option limits from its catalog entry, which specs read without importing torch.
    """

    def decorate(cls: type[Backbone]) -> type[Backbone]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        if name in BUILT_IN:
            limits = BUILT_IN[name][1]
            cls.size_divisor, cls.min_width = limits.size_divisor, limits.min_width
        _REGISTRY[name] = cls
        return cls

    return decorate


def _register_built_ins() -> None:
    """Import the built-in backbones' modules, which register them."""
    for module, _ in BUILT_IN.values():
        importlib.import_module(f"{__package__}.{module}")


def backbone_names() -> list[str]:
    """Names of the registered backbones (the built-in ones and any registered since)."""
    _register_built_ins()
    return sorted(_REGISTRY)


def backbone_class(name: str) -> type[Backbone]:
    """The class registered as ``name``.

    Raises:
        ConfigError: for an unknown name (the message suggests the closest one).
    """
    _register_built_ins()
    if name not in _REGISTRY:
        hint = did_you_mean(name, _REGISTRY)
        raise ConfigError(f"unknown backbone {name!r}{hint}; available: {', '.join(backbone_names())}")
    return _REGISTRY[name]


def build_backbone(name: str, *, width: int = 8, patch_size: int = 80) -> Backbone:
    """Instantiate a registered backbone.

    Raises:
        ConfigError: for an unknown name (the message suggests the closest one), or a
            width or patch size it cannot take.
    """
    return backbone_class(name)(width=width, patch_size=patch_size)
