"""A real sqlite MLflow store holding sweeps with known results (shared by the table tests).

Experiment ``table1``, one sweep over backbone x method x seed (1 trial per cell):

| configuration      | seed 1                        | seed 2                 |
|--------------------|-------------------------------|------------------------|
| rfnet / baseline   | Dice 0.70                     | Dice 0.74              |
| rfnet / passion    | Dice 0.80, but ET 0.50        | Dice 0.84              |
| mmformer / baseline| Dice 0.60                     | failed                 |
| mmformer / passion | Dice 0.65, HD95 3.0           | never ran (no run)     |

Every HD95 is 5.0 unless said otherwise. Experiment ``searched``: one sweep whose
PASSION cell ran 3 Optuna trials (objective 0.5, 0.9, 0.7 with Dice 0.60, 0.70, 0.95)
and a baseline cell, on two splits. Experiment ``hd95``: three seeds of one cell whose
HD95 was computed differently (pooled, max_directed, not recorded).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .store import KnownTrial, record_sweep, uniform


def _trial(backbone: str, method: str, seed: int, **outcome: object) -> KnownTrial:
    cell = f"backbone={backbone},method={method},seed={seed}"
    return KnownTrial(cell, {"backbone": backbone, "method": method, "seed": str(seed), "split": "mr2468"}, **outcome)


@pytest.fixture(scope="session")
def known_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Tracking URI of the store described in the module docstring."""
    folder = tmp_path_factory.mktemp("tables")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    plan = {
        f"backbone={b},method={m},seed={s}": 1
        for b in ("rfnet", "mmformer")
        for m in ("baseline", "passion")
        for s in (1, 2)
    }
    trials = [
        _trial("rfnet", "baseline", 1, dice=uniform(0.70)),
        _trial("rfnet", "baseline", 2, dice=uniform(0.74)),
        _trial("rfnet", "passion", 1, dice=uniform(0.80), dice_by_region={"ET": 0.50}),
        _trial("rfnet", "passion", 2, dice=uniform(0.84)),
        _trial("mmformer", "baseline", 1, dice=uniform(0.60)),
        _trial("mmformer", "baseline", 2, status="FAILED"),
        _trial("mmformer", "passion", 1, dice=uniform(0.65), hd95=3.0),
    ]
    record_sweep(uri, folder, experiment="table1", name="table1", plan=plan, trials=trials)

    searched_plan = {
        f"split={s},method={m}": (3 if m == "passion" else 1)
        for s in ("mr2468", "mr5528")
        for m in ("baseline", "passion")
    }
    searched = []
    for split in ("mr2468", "mr5528"):
        tags = {"backbone": "rfnet", "split": split, "seed": "1037"}
        searched.append(
            KnownTrial(
                f"split={split},method=baseline", {**tags, "method": "baseline"}, dice=uniform(0.5), objective=0.4
            )
        )
        for objective, dice in ((0.5, 0.60), (0.9, 0.70), (0.7, 0.95)):
            searched.append(
                KnownTrial(
                    f"split={split},method=passion",
                    {**tags, "method": "passion"},
                    dice=uniform(dice),
                    objective=objective,
                )
            )
    record_sweep(uri, folder, experiment="searched", name="searched", plan=searched_plan, trials=searched)

    definitions = [
        {"hd95_percentile": "pooled", "hd95_convention": "reference"},
        {"hd95_percentile": "max_directed", "hd95_convention": "reference"},
        {},
    ]
    record_sweep(
        uri,
        folder,
        experiment="hd95",
        name="hd95",
        plan={f"method=baseline,seed={seed}": 1 for seed in (1, 2, 3)},
        trials=[
            KnownTrial(
                f"method=baseline,seed={seed}",
                {"backbone": "rfnet", "method": "baseline", "seed": str(seed), "split": "mr2468"},
                dice=uniform(0.7),
                evaluation=evaluation,
            )
            for seed, evaluation in zip((1, 2, 3), definitions)
        ],
    )
    return uri


@pytest.fixture(scope="session")
def store_folder(known_store: str) -> Path:
    return Path(known_store.removeprefix("sqlite:///")).parent
