"""``passion-sweep table`` end to end on the known store: outputs, plot and errors."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest
from click.testing import CliRunner

from passion_sweep.cli import main


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["table", *args], env=env)


@pytest.mark.parametrize("fmt", ["md", "csv", "latex", "html"])
def test_table_is_written_in_each_format(known_store: str, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"table.{fmt}"
    result = invoke("--tracking-uri", known_store, "--experiment", "table1", "--format", fmt, "--out", str(out))

    assert result.exit_code == 0, result.output
    assert f"table written to {out}" in result.output
    text = out.read_text()
    assert "72.00" in text or "72," in text
    assert "mmformer / baseline" in text


def test_printed_table_with_filter_columns_and_delta(known_store: str) -> None:
    result = invoke(
        "--experiment",
        "table1",
        "--columns",
        "method",
        "--filter",
        "backbone=rfnet",
        "--regions",
        "WT,ET",
        "--delta",
        env={"MLFLOW_TRACKING_URI": known_store},
    )

    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[2]
    assert header == (
        "| FLAIR | T1ce | T1 | T2 | baseline WT | baseline ET | passion WT | passion ET | Δ PASSION WT | Δ PASSION ET |"
    )
    assert "mmformer" not in result.output


def test_plot_has_a_heatmap_per_region_and_the_averages(known_store: str, tmp_path: Path) -> None:
    plot = tmp_path / "dice.png"
    result = invoke("--tracking-uri", known_store, "--experiment", "table1", "--plot", str(plot))

    assert result.exit_code == 0, result.output
    image = matplotlib.image.imread(plot)
    height, width, _ = image.shape
    assert width > 1000 and height > 1000, "three heatmaps over a bar chart, readable"
    assert image[..., :3].std() > 0.1, "not blank"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment", "nope"], "error: no experiment 'nope' in the tracking store"),
        (["--experiment", "table1", "--filter", "split"], "error: --filter 'split' must look like KEY=VALUE"),
        (["--experiment", "table1", "--regions", "WT,XX"], "error: unknown region 'XX'"),
        (["--experiment", "table1", "--columns", "backbone"], "error: the selected runs differ in method"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(known_store: str, args: list[str], message: str) -> None:
    result = invoke("--tracking-uri", known_store, *args)

    assert result.exit_code == 2
    assert result.output.startswith(message) and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output


def test_nothing_is_written_when_an_output_folder_is_missing(known_store: str, tmp_path: Path) -> None:
    plot = tmp_path / "dice.png"
    result = invoke(
        "--tracking-uri",
        known_store,
        "--experiment",
        "table1",
        "--plot",
        str(plot),
        "--out",
        str(tmp_path / "no" / "t.md"),
    )

    assert result.exit_code == 2
    assert result.output == f"error: folder {tmp_path / 'no'} does not exist: create it or write t.md elsewhere\n"
    assert list(tmp_path.iterdir()) == []
