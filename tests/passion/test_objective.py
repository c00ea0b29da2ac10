"""The pair-batched PASSION objective equals the reference's naive computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainables.backbones import backbone_names, build_backbone
from trainables.passion import LossTerms, PassionConfig, combine_loss_terms, training_step
from trainables.passion.losses import (
    prototype_distillation,
    segmentation_loss,
    shared_classes,
    temperature_kl,
    upsample_probabilities,
)


def naive_loss_terms(model, images, labels, *, fusion_mask, counted, config) -> LossTerms:
    """The reference's way: every encoder, separate-decoder and student pass for every
    sample, then the terms of absent modalities multiplied by zero."""
    target = F.one_hot(labels, 4).movedim(-1, 1).to(images.dtype)
    per_modality = [model.encode(images[:, m : m + 1], m) for m in range(4)]
    features = [torch.stack(levels, dim=1) for levels in zip(*per_modality, strict=True)]
    weights = counted.to(images.dtype)

    def seg_with_aux(output):
        fuse = segmentation_loss(torch.softmax(output.logits, 1), target)
        prm = sum(
            weight * segmentation_loss(upsample_probabilities(torch.softmax(aux, 1), scale), target)
            for aux, (scale, weight) in zip(output.aux_logits, model.deep_supervision, strict=True)
        )
        return fuse, prm

    sep = torch.stack(
        [segmentation_loss(torch.softmax(model.separate(per_modality[m]), 1), target) for m in range(4)], dim=1
    )
    teacher = model.fuse(features, fusion_mask)
    fuse, prm = seg_with_aux(teacher)
    kl, proto, distance = [], [], []
    for m in range(4):
        one_hot = torch.zeros_like(fusion_mask)
        one_hot[:, m] = True
        student = model.fuse(features, one_hot)
        kl_m = temperature_kl(student.logits, teacher.logits.detach(), temperature=config.temperature)
        for aux_s, aux_t, (scale, weight) in zip(
            student.aux_logits, teacher.aux_logits, model.deep_supervision, strict=True
        ):
            kl_m = kl_m + weight * temperature_kl(aux_s, aux_t.detach(), temperature=config.temperature, scale=scale)
        proto_m, distance_m = prototype_distillation(
            student.features[0], teacher.features[0].detach(), target, classes=shared_classes(target)
        )
        kl.append(kl_m)
        proto.append(proto_m)
        distance.append(distance_m)
    return LossTerms(
        sep=sep * weights,
        fuse=fuse,
        prm=prm,
        kl=torch.stack(kl, 1) * weights,
        proto=torch.stack(proto, 1) * weights,
        # A one-modality sample's student is its teacher: distance exactly 0 (at batch
        # size 1 bit for bit; batched passes may differ by roundoff, which this ignores).
        distance=torch.stack(distance, 1) * weights * (counted.sum(1, keepdim=True) > 1),
    )


BETA = torch.tensor([1.2, 0.8, 1.0, 0.9])
WEIGHTS = torch.tensor([2.0, 1.5, 1.0, 4.0])


def gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", backbone_names())
@pytest.mark.parametrize("enabled", [True, False])
def test_training_step_matches_naive_computation(name: str, enabled: bool) -> None:
    torch.manual_seed(3)
    width = max(2, build_backbone(name, width=4, patch_size=32).min_width)  # float64 is slow: keep it narrow
    # eval(): the same computation without dropout's random masks (the norms use instance statistics either way).
    model = build_backbone(name, width=width, patch_size=32).double().eval()
    size = 2 * model.size_divisor
    availability = torch.tensor([[True, False, True, True], [False, True, False, False], [True, True, True, True]])
    images = torch.randn(3, 4, size, size, size, dtype=torch.float64) * availability[..., None, None, None]
    labels = torch.randint(0, 4, (3, size, size, size))
    # Per-sample preference: the one-modality sample is left out instead of making the
    # whole step's preference NaN, so that the relative preference gates some terms on.
    config = PassionConfig(enabled=enabled, per_sample_preference=True)
    masks = {"fusion_mask": availability, "counted": availability}

    step = training_step(
        model, images, labels, **masks, beta=BETA, modality_weights=WEIGHTS, config=config, warmup=False
    )
    fast_grads = gradients(model)
    model.zero_grad()
    naive_terms = naive_loss_terms(model, images, labels, **masks, config=config)
    naive = combine_loss_terms(naive_terms, counted=availability, beta=BETA, modality_weights=WEIGHTS, config=config)
    naive.total.backward()
    naive_grads = gradients(model)

    torch.testing.assert_close(step.total, naive.total.detach(), atol=1e-5, rtol=0)
    assert step.parts.keys() == naive.parts.keys()
    for name, value in naive.parts.items():
        torch.testing.assert_close(step.parts[name], value, atol=1e-5, rtol=0, msg=name)
    if enabled:
        torch.testing.assert_close(step.relative_preference, naive.relative_preference, atol=1e-5, rtol=0)
        lagging = step.relative_preference > 0
        assert lagging.any() and not lagging[availability.any(0)].all(), "both gated and counted terms"
    assert fast_grads.keys() <= naive_grads.keys()
    for name, naive_grad in naive_grads.items():
        fast_grad = fast_grads.get(name, torch.zeros_like(naive_grad))
        torch.testing.assert_close(fast_grad, naive_grad, atol=1e-5, rtol=1e-5, msg=name)


def test_student_path_ignores_other_modalities() -> None:
    torch.manual_seed(0)
    model = build_backbone("rfnet", width=4, patch_size=16).eval()
    images = torch.randn(1, 4, 16, 16, 16)
    changed = images.clone()
    changed[:, [0, 2, 3]] = torch.randn(1, 3, 16, 16, 16)
    only_t1ce = torch.tensor([[False, True, False, False]])
    all_present = torch.ones(1, 4, dtype=torch.bool)
    with torch.no_grad():
        before = model.fuse(model.encode_present(images, all_present), only_t1ce).logits
        after = model.fuse(model.encode_present(changed, all_present), only_t1ce).logits
    torch.testing.assert_close(before, after)


def rfnet_step(mask: torch.Tensor, *, warmup: bool, seed: int):
    """A default PASSION step of a seeded small RFNet on random 16^3 images, zero where
    ``mask`` (``BK``) says a modality is absent; returns the model, images, labels and step."""
    torch.manual_seed(seed)
    model = build_backbone("rfnet", width=4, patch_size=16)
    images = torch.randn(len(mask), 4, 16, 16, 16) * mask[..., None, None, None]
    labels = torch.randint(0, 4, (len(mask), 16, 16, 16))
    step = training_step(
        model,
        images,
        labels,
        fusion_mask=mask,
        counted=mask,
        beta=BETA,
        modality_weights=WEIGHTS,
        config=PassionConfig(),
        warmup=warmup,
    )
    return model, images, labels, step


def test_warmup_counts_only_the_separate_term() -> None:
    mask = torch.tensor([[True, True, False, False]])
    model, images, labels, step = rfnet_step(mask, warmup=True, seed=1)
    assert step.parts.keys() == {"sep"} and step.relative_preference is None
    assert all(p.grad is None for p in model.fusion_decoder.parameters())
    assert all(p.grad is None for p in model.encoders[2].parameters())  # t1 absent
    assert any(p.grad is not None for p in model.separate_decoder.parameters())
    with torch.no_grad():
        features = model.encode_present(images, mask)
        sep = [
            segmentation_loss(
                torch.softmax(model.separate([level[:, m] for level in features]), 1),
                F.one_hot(labels, 4).movedim(-1, 1).float(),
            )
            for m in (0, 1)
        ]
    expected = sum(BETA[m] * WEIGHTS[m] * sep[m][0] for m in (0, 1))
    torch.testing.assert_close(step.total, expected)


def test_a_one_modality_case_gates_off_every_separate_term() -> None:
    """The reference's NaN preference: no modality lags, the separate decoder gets no gradient."""
    mask = torch.tensor([[True, True, False, False], [False, False, True, False]])
    model, _, _, step = rfnet_step(mask, warmup=False, seed=2)
    assert step.relative_preference.isnan().all() and step.parts["sep"] == 0 and step.parts["proto"] == 0
    assert (step.per_modality["sep"][:3] > 0).all()  # still computed, for the log
    assert all(p.grad is None for p in model.separate_decoder.parameters())
    assert all(p.grad is not None for p in model.fusion_decoder.parameters() if p.requires_grad)
