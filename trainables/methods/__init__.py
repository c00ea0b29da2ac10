"""Training methods: PASSION's ablations and the modality-balancing methods it is compared with.

:mod:`trainables.methods.registry` names every method (``baseline``, ``passion``, the
ablations, ``moddrop``, ``pmr``, ``ogm-ge``, ``mmpareto``) and its coefficients; the
other modules hold each balancing method's pure functions. Names are imported on first
use, so that reading the registry does not pull in torch.
"""

from __future__ import annotations

from trainables.lazy import lazy_exports

# Public name to the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "MethodInfo": "registry",
    "register_method": "registry",
    "method_info": "registry",
    "method_names": "registry",
    "MethodConfig": "coefficients",
    "ModDropConfig": "coefficients",
    "PMRConfig": "coefficients",
    "OGMGEConfig": "coefficients",
    "MMParetoConfig": "coefficients",
    "search_space": "coefficients",
    "discrepancy_ratio": "imbalance",
    "drop_modalities": "moddrop",
    "prototype_classifier": "pmr",
    "pmr_loss": "pmr",
    "modulation_coefficients": "ogm_ge",
    "modulate_gradients": "ogm_ge",
    "integrate_gradients": "mmpareto",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
