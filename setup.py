"""Installs ``passion_sweep`` (orchestration) and ``trainables`` (training core).

Install torch first (see the Makefile): an open torch requirement resolved by pip
before torch is present pulls a multi-GB CUDA build.
"""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages, setup

_VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (Path(__file__).parent / "passion_sweep" / "__init__.py").read_text(),
    re.MULTILINE,
).group(1)

_TEST = ["pytest>=8.0", "pytest-timeout>=2.2", "hypothesis>=6.100", "medpy>=0.5"]

setup(
    name="passion-sweep",
    version=_VERSION,
    description="Sweeps of PASSION incomplete multi-modal segmentation experiments on Ray Tune + MLflow",
    long_description=(Path(__file__).parent / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["passion_sweep", "passion_sweep.*", "trainables", "trainables.*"]),
    # The PASSION reference's case lists and split CSVs (trainables/data/reference_files/NOTICE.md).
    package_data={"trainables.data": ["reference_files/*"]},
    install_requires=[
        "torch>=2.2,<3",
        "numpy>=1.24,<3",
        "nibabel>=5.0",
        "monai>=1.3,<2",
        "scipy>=1.10",
        "click>=8.1",
        "pyyaml>=6.0",
        "pydantic>=2.5",
        "pandas>=2.0",
        "matplotlib>=3.7",
        "tqdm>=4.65",
        "ray[default,tune]>=2.40,<3",
        "optuna>=4.0,<6",
        "pathspec>=0.12,<2",
        "mlflow>=3.13,<3.19",
    ],
    extras_require={
        "test": _TEST,
        # `make check`: pinned so that a new linter release cannot fail an unchanged tree
        "dev": [*_TEST, "ruff==0.17.5", "mypy==2.4.1", "types-PyYAML", "types-tqdm"],
    },
    entry_points={"console_scripts": ["passion-sweep=passion_sweep.cli:main"]},
)
