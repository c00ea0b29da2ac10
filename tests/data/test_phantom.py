from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from trainables.data import CONTRAST, synthesize_dataset
from trainables.errors import ConfigError
from trainables.modalities import MODALITIES


def _case_arrays(case_dir: Path) -> list[np.ndarray]:
    return [np.asarray(nib.load(case_dir / f"{case_dir.name}_{kind}.nii.gz").dataobj) for kind in (*MODALITIES, "seg")]


def test_layout_and_labels(phantom_raw: Path) -> None:
    cases = sorted(path.name for path in phantom_raw.iterdir())
    assert cases == [f"Phantom_00{index}" for index in range(1, 7)]
    *images, label = _case_arrays(phantom_raw / "Phantom_001")
    assert all(image.shape == (48, 48, 48) and image.dtype == np.int16 for image in images)
    assert set(np.unique(label)) == {0, 1, 2, 4}
    brain = images[0] > 0
    assert all(np.array_equal(image > 0, brain) for image in images)  # zero exactly outside the brain
    assert brain[label > 0].all()  # the tumour lies inside the brain


def test_same_seed_same_data_and_other_seed_other_data(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        synthesize_dataset(tmp_path / name, cases=2, shape=(24, 24, 24), seed=seed)
    arrays = {name: _case_arrays(tmp_path / name / "Phantom_002") for name in "abc"}
    assert all(np.array_equal(x, y) for x, y in zip(arrays["a"], arrays["b"], strict=True))
    assert not np.array_equal(arrays["a"][0], arrays["c"][0])


def test_case_depends_only_on_seed_and_index(tmp_path: Path) -> None:
    synthesize_dataset(tmp_path / "two", cases=2, shape=(24, 24, 24), seed=5)
    synthesize_dataset(tmp_path / "three", cases=3, shape=(24, 24, 24), seed=5)
    assert np.array_equal(
        _case_arrays(tmp_path / "two" / "Phantom_002")[1], _case_arrays(tmp_path / "three" / "Phantom_002")[1]
    )


def test_contrast_makes_modalities_informative(phantom_raw: Path) -> None:
    *images, label = _case_arrays(phantom_raw / "Phantom_002")
    brain = (images[0] > 0) & (label == 0)
    ratio = {
        m: {value: images[i][label == value].mean() / images[i][brain].mean() for value in (1, 2, 4)}
        for i, m in enumerate(MODALITIES)
    }
    assert ratio["flair"][2] > 1.4 and ratio["t2"][2] > 1.4  # edema bright in FLAIR and T2
    assert abs(ratio["t1ce"][2] - 1) < 0.15 and abs(ratio["t1"][2] - 1) < 0.2  # ... faint elsewhere
    assert ratio["t1ce"][4] > 1.8  # enhancing rim in T1ce ...
    assert all(abs(ratio[m][4] - ratio[m][2]) < 0.15 for m in ("flair", "t1", "t2"))  # ... like edema elsewhere
    assert ratio["t1ce"][1] < 0.6 and ratio["t1"][1] < 0.75 and ratio["t2"][1] > ratio["t2"][2] + 0.3  # core
    assert abs(ratio["flair"][1] - ratio["flair"][2]) < 0.15  # core like edema in FLAIR
    assert set(CONTRAST) == {0, 1, 2, 4}


@pytest.mark.parametrize(
    ("options", "pattern"), [({"cases": 0}, "cases must be >= 1"), ({"shape": (8, 48, 48)}, "shape must be")]
)
def test_bad_options(tmp_path: Path, options: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        synthesize_dataset(tmp_path / "out", **{"cases": 1, "shape": (24, 24, 24), "seed": 0, **options})
    assert not any(tmp_path.iterdir())


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(ConfigError, match="not empty"):
        synthesize_dataset(tmp_path, cases=1, shape=(24, 24, 24), seed=0)
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]
