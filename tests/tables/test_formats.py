"""Every output format of a table with known values: structure, bold marks, footnotes."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from passion_sweep.tables.comparison import ComparisonTable, build_comparison_table
from passion_sweep.tables.formats import render_table
from passion_sweep.tables.results import RunSelection, load_trial_results

COLUMNS = 4 + 6 * 3  # presence marks, 4 configurations and 2 deltas of 3 regions


@pytest.fixture(scope="module")
def table(known_store: str) -> ComparisonTable:
    return build_comparison_table(load_trial_results(known_store, RunSelection(experiment="table1")), delta=True)


def test_markdown(table: ComparisonTable) -> None:
    lines = render_table(table, "md").splitlines()
    rows = [line for line in lines if line.startswith("|")]

    assert all(row.count("|") == COLUMNS + 1 for row in rows), "every row has every column"
    assert rows[0].startswith("| FLAIR | T1ce | T1 | T2 | rfnet / baseline WT |")
    assert "mmformer / baseline<sup>a</sup> WT" in rows[0]
    first = [cell.strip() for cell in rows[2].strip("|").split("|")]  # subset t2
    assert first[:4] == ["○", "○", "○", "●"]
    assert first[4:10] == [
        "72.00 ± 2.83",
        "72.00 ± 2.83",
        "**72.00 ± 2.83**",
        "**82.00 ± 2.83**",
        "**82.00 ± 2.83**",
        "67.00 ± 24.04",
    ]
    assert first[10:16] == ["60.00"] * 3 + ["65.00"] * 3, "one seed: no ±"
    assert first[16:] == ["+10.00", "+10.00", "-5.00", "+5.00", "+5.00", "+5.00"]
    average = [cell.strip() for cell in rows[-1].strip("|").split("|")]
    assert average[0] == "**Average**" and len(rows) == 2 + 16
    assert "- a: mmformer / baseline: 1 failed of 2 trials; values average 1 seed(s)" in lines


def test_csv_reads_back_with_unrounded_values(table: ComparisonTable) -> None:
    text = render_table(table, "csv")
    frame = pd.read_csv(io.StringIO(text), comment="#", index_col="subset")

    assert list(frame.index[:2]) == ["t2", "t1ce"] and frame.index[-1] == "average"
    assert frame.loc["t2", ["flair", "t1ce", "t1", "t2"]].tolist() == [0, 0, 0, 1]
    assert frame.at["flair", "rfnet / passion ET mean"] == pytest.approx(67.0)
    assert frame.at["flair", "rfnet / passion ET std"] == pytest.approx(24.0416, abs=1e-4)
    assert frame.at["average", "mmformer / baseline WT n"] == 1
    assert pd.isna(frame.at["average", "mmformer / baseline WT std"])
    assert frame["rfnet / baseline ET best"].eq(1).all() and frame["rfnet / passion ET best"].eq(0).all()
    assert frame.at["average", "Δ rfnet ET"] == pytest.approx(-5.0)
    assert next(line for line in text.splitlines() if line.startswith("#")).startswith("# a: mmformer / baseline")


def _latex_cells(row: str) -> int:
    """Columns a LaTeX row spans: its top-level ``&`` separated cells, multicolumns counted in full."""
    depth, cells, spans = 0, [""], []
    for character in row:
        depth += {"{": 1, "}": -1}.get(character, 0)
        if character == "&" and depth == 0 and not cells[-1].endswith("\\"):
            cells.append("")
        else:
            cells[-1] += character
    for cell in cells:
        match = re.match(r"\s*\\multicolumn\{(\d+)\}", cell)
        spans.append(int(match.group(1)) if match else 1)
    return sum(spans)


def test_latex_is_valid_tabular(table: ComparisonTable) -> None:
    text = render_table(table, "latex")
    lines = text.splitlines()

    assert lines[0] == r"\begin{tabular}{cccc|ccc|ccc|ccc|ccc|ccc|ccc}" and lines[-1] == r"\end{tabular}"
    assert len(re.findall(r"c", lines[0].split("{")[2])) == COLUMNS
    assert text.count("{") == text.count("}"), "balanced braces"
    rows = [line.removesuffix(r" \\") for line in lines[1:-1] if line.endswith(r"\\")]
    assert rows and all(_latex_cells(row) == COLUMNS for row in rows), [r for r in rows if _latex_cells(r) != COLUMNS]
    body = "\n".join(lines[1:-1])
    assert not re.search(r"(?<!\\)[%#_]", body), "special characters are escaped"
    assert body.count(r"\textbf{") == int(table.best.to_numpy().sum())
    assert r"mmformer / baseline$^{a}$" in body and r"$\Delta$ rfnet" in body
    assert r"\textbf{82.00 $\pm$ 2.83}" in body and r"$\circ$ & $\circ$ & $\circ$ & $\bullet$" in body
    assert r"\multicolumn{4}{c}{Average}" in body


class _TableShape(HTMLParser):
    """Collects the column span of every row and the bold cells of an HTML table."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []
        self.bold = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append(0)
        elif tag in ("td", "th"):
            self.rows[-1] += int(dict(attrs).get("colspan") or 1)
        elif tag == "b":
            self.bold += 1


def test_html_rows_span_every_column(table: ComparisonTable) -> None:
    text = render_table(table, "html")
    shape = _TableShape()
    shape.feed(text)

    assert text.startswith('<table class="passion-sweep">') and text.rstrip().endswith("</table>")
    assert len(shape.rows) == 2 + 16 + len(table.footnotes)
    assert all(span == COLUMNS for span in shape.rows)
    assert shape.bold == int(table.best.to_numpy().sum())
    assert '<th colspan="4">Average</th>' in text and "mmformer / baseline<sup>a</sup>" in text


def test_unknown_format_is_refused(table: ComparisonTable) -> None:
    with pytest.raises(ValueError, match="format must be one of md, csv, latex, html, got 'xls'"):
        render_table(table, "xls")


@pytest.mark.parametrize("fmt", ["md", "latex", "html"])
def test_hd95_tables_carry_the_definition_in_the_caption(known_store: str, table: ComparisonTable, fmt: str) -> None:
    hd95 = build_comparison_table(load_trial_results(known_store, RunSelection(experiment="table1")), metric="hd95")
    assert "bold. HD95 in mm at unit voxel spacing: 95th percentile of both" in render_table(hd95, fmt)
    assert "HD95 in mm" not in render_table(table, fmt), "not in Dice tables"


def test_hd95_csv_starts_its_comments_with_the_definition(known_store: str) -> None:
    hd95 = build_comparison_table(load_trial_results(known_store, RunSelection(experiment="table1")), metric="hd95")
    comments = [line for line in render_table(hd95, "csv").splitlines() if line.startswith("#")]
    assert comments[0] == f"# {hd95.definition}"
