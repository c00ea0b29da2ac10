"""PASSION loss terms against the reference implementation's values (golden.json, 1e-5)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainables.passion import LossTerms, PassionConfig, PreferenceBalancer, combine_loss_terms
from trainables.passion.losses import (
    prototype_distillation,
    soft_dice_loss,
    temperature_kl,
    upsample_probabilities,
    weighted_cross_entropy,
)
from trainables.passion.preference import modality_frequency_weights, step_relative_preference


def assert_golden(actual: torch.Tensor, expected: list[float], tolerance: float) -> None:
    torch.testing.assert_close(actual.double(), torch.tensor(expected, dtype=torch.float64), atol=tolerance, rtol=0)


@pytest.mark.parametrize(
    ("logits", "scale", "suffix"),
    [("logits", 1, ""), ("low", 2, "_up2")],
    ids=["full-resolution", "upsampled-deep-supervision"],
)
def test_segmentation_losses(golden: dict, golden_inputs: dict, logits: str, scale: int, suffix: str) -> None:
    probs = upsample_probabilities(torch.softmax(golden_inputs[logits], dim=1), scale)
    outputs, tolerance = golden["outputs"], golden["tolerance"]
    assert_golden(soft_dice_loss(probs, golden_inputs["target"]), outputs[f"dice_loss_bs{suffix}"], tolerance)
    assert_golden(
        weighted_cross_entropy(probs, golden_inputs["target"]), outputs[f"softmax_weighted_loss_bs{suffix}"], tolerance
    )


def test_temperature_kl(golden: dict, golden_inputs: dict) -> None:
    outputs, tolerance = golden["outputs"], golden["tolerance"]
    full = temperature_kl(golden_inputs["logit_s"], golden_inputs["logit_t"], temperature=4.0)
    low = temperature_kl(golden_inputs["low"], golden_inputs["low_t"], temperature=4.0, scale=2)
    assert_golden(full, outputs["temp_kl_loss_bs_T4"], tolerance)
    assert_golden(low, outputs["temp_kl_loss_bs_T4_up2"], tolerance)


def test_prototype_distillation(golden: dict, golden_inputs: dict) -> None:
    expected, tolerance = golden["outputs"]["prototype_passion_loss_bs"], golden["tolerance"]
    loss, distance = prototype_distillation(golden_inputs["feat_s"], golden_inputs["feat_t"], golden_inputs["target"])
    assert_golden(loss, expected["proto_loss"], tolerance)
    assert_golden(distance, expected["dist"], tolerance)


def test_prototype_distillation_skips_a_class_absent_from_one_sample(golden: dict, golden_inputs: dict) -> None:
    labels = golden_inputs["labels"].clone()
    labels[1][labels[1] == 3] = 2
    target = F.one_hot(labels, 4).permute(0, 4, 1, 2, 3).float()
    expected = golden["outputs"]["prototype_passion_loss_bs_class3_absent_in_b1"]
    loss, distance = prototype_distillation(golden_inputs["feat_s"], golden_inputs["feat_t"], target)
    assert_golden(loss, expected["proto_loss"], golden["tolerance"])
    assert_golden(distance, expected["dist"], golden["tolerance"])


def test_idt_loss_assembly(golden: dict) -> None:
    case, tolerance = golden["outputs"]["idt_loss_assembly"], golden["tolerance"]
    mask = torch.tensor(case["mask"])
    per_modality = {
        name: torch.tensor(case[f"{name}_bs"]).reshape(case["B"], 4) for name in ("sep", "kl", "proto", "dist")
    }
    weights = modality_frequency_weights(torch.tensor(case["modal_num"]), case["iter_per_epoch"])
    assert_golden(weights, case["modal_weight"], tolerance)

    preference = step_relative_preference(per_modality["dist"], mask)
    assert_golden(preference, case["rp_iter"], tolerance)
    assert (preference > 0).tolist() == case["rp_mask"]

    terms = LossTerms(
        sep=per_modality["sep"],
        fuse=torch.tensor(case["fuse_bs"]),
        prm=torch.tensor(case["prm_bs"]),
        kl=per_modality["kl"],
        proto=per_modality["proto"],
        distance=per_modality["dist"],
    )
    step = combine_loss_terms(
        terms, counted=mask, beta=torch.tensor(case["imb_beta"]), modality_weights=weights, config=PassionConfig()
    )
    for part, key in (("sep", "sep_loss"), ("kl", "kl_loss"), ("proto", "proto_loss")):
        assert step.parts[part].item() == pytest.approx(case[key], abs=tolerance), part
    assert step.total.item() == pytest.approx(case["loss"], abs=tolerance)


def test_beta_update_at_epoch_zero(golden: dict) -> None:
    case, tolerance = golden["outputs"]["imb_beta_update_epoch0"], golden["tolerance"]
    balancer = PreferenceBalancer(PassionConfig(), normalisers=torch.ones(4))
    balancer.accumulate(torch.tensor([case["epoch_dist_m"]]), torch.ones(1, 4, dtype=torch.bool))
    preference = balancer.end_epoch(epoch=0)
    assert balancer.eta == pytest.approx(case["eta_used"])
    assert_golden(preference, case["rp_epoch"], tolerance)
    assert_golden(balancer.beta, case["imb_beta"], tolerance)
