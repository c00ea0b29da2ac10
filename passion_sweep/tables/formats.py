"""Rendering a :class:`~passion_sweep.tables.comparison.ComparisonTable` as Markdown, CSV, LaTeX or HTML.

Markdown, LaTeX and HTML share one layout (presence circles, grouped headers, bold
best values, footnotes), built once by :func:`_layout`; they are written here rather
than with pandas' ``to_latex``/``to_html`` because those cannot mark single cells bold,
span the average row's label over the presence columns or add footnote rows the same
way in every format. CSV is for machines: unrounded means, standard deviations, seed
counts and best flags, written by pandas.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from passion_sweep.tables.comparison import AVERAGE_ROW, SUBSET_ROWS, ComparisonTable
from trainables.modalities import MODALITIES, SUBSET_MASKS

__all__ = ["FORMATS", "render_table"]

_PRESENCE_HEADER = ("FLAIR", "T1ce", "T1", "T2")
_AVERAGE_LABEL = "Average"
_EMPTY = "–"  # no finished trial behind this value
_UNITS = {"dice": "Dice (%)", "hd95": "HD95 (mm)"}
_HTML_SUPERSCRIPT = "<sup>{}</sup>"  # Markdown too: GitHub renders it
_LATEX_SUPERSCRIPT = "$^{{{}}}$"


@dataclass(frozen=True)
class _Cell:
    text: str
    bold: bool = False


@dataclass(frozen=True)
class _Group:
    title: str
    marker: str
    regions: tuple[str, ...]

    def heading(self, escape: Callable[[str], str], superscript: str) -> str:
        """The title escaped for a format, with the marker in its ``superscript`` template."""
        return escape(self.title) + (superscript.format(self.marker) if self.marker else "")


@dataclass(frozen=True)
class _Row:
    presence: tuple[bool, ...] | None  # None for the average row
    cells: tuple[_Cell, ...]


def _value(table: ComparisonTable, row: str, label: str, region: str) -> str:
    mean, std, n = (table.stats.at[row, (label, region, stat)] for stat in ("mean", "std", "n"))
    if not n or math.isnan(mean):
        return _EMPTY
    text = f"{mean:.{table.precision}f}"
    return f"{text} ± {std:.{table.precision}f}" if n > 1 and not math.isnan(std) else text


def _delta(value: float, precision: int) -> str:
    return _EMPTY if math.isnan(value) else f"{value:+.{precision}f}"


def _layout(table: ComparisonTable) -> tuple[list[_Group], list[_Row]]:
    groups = [_Group(config.label, config.marker, table.regions) for config in table.configurations]
    delta_labels = list(dict.fromkeys(table.deltas.columns.get_level_values(0))) if len(table.deltas.columns) else []
    groups += [_Group(label, "", table.regions) for label in delta_labels]
    rows = []
    for row, presence in [*zip(SUBSET_ROWS, SUBSET_MASKS, strict=True), (AVERAGE_ROW, None)]:
        cells = [
            _Cell(_value(table, row, config.label, region), bool(table.best.at[row, (config.label, region)]))
            for config in table.configurations
            for region in table.regions
        ]
        cells += [
            _Cell(_delta(table.deltas.at[row, (label, region)], table.precision))
            for label in delta_labels
            for region in table.regions
        ]
        rows.append(_Row(presence, tuple(cells)))
    return groups, rows


def _caption(table: ComparisonTable) -> str:
    better = "lowest" if table.lower_is_better else "highest"
    caption = (
        f"{_UNITS[table.metric]} per available-modality subset: mean ± std over seeds; "
        f"{better} of each row and region in bold."
    )
    return f"{caption} {table.definition}." if table.definition else caption


def _markdown(table: ComparisonTable) -> str:
    groups, rows = _layout(table)
    header = [*_PRESENCE_HEADER] + [
        f"{group.heading(str, _HTML_SUPERSCRIPT)} {region}" for group in groups for region in group.regions
    ]
    lines = [
        f"**{_caption(table)}**",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(":-:" for _ in header) + "|",
    ]
    for row in rows:
        marks = (
            ["●" if present else "○" for present in row.presence]
            if row.presence
            else [f"**{_AVERAGE_LABEL}**", "", "", ""]
        )
        values = [f"**{cell.text}**" if cell.bold else cell.text for cell in row.cells]
        lines.append("| " + " | ".join(marks + values) + " |")
    if table.footnotes:
        lines += [""] + [f"- {note}" for note in table.footnotes]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "–": "--",
    "●": r"$\bullet$",
    "○": r"$\circ$",
}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(character, character) for character in text)


def _latex(table: ComparisonTable) -> str:
    groups, rows = _layout(table)
    spec = "cccc" + "".join("|" + "c" * len(group.regions) for group in groups)
    width = 4 + sum(len(group.regions) for group in groups)
    group_header = [r"\multicolumn{4}{c}{Modalities}"] + [
        rf"\multicolumn{{{len(group.regions)}}}{{|c}}{{{group.heading(_tex, _LATEX_SUPERSCRIPT)}}}" for group in groups
    ]
    region_header = [_tex(name) for name in _PRESENCE_HEADER] + [
        _tex(region) for group in groups for region in group.regions
    ]
    lines = [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\hline",
        " & ".join(group_header) + r" \\",
        " & ".join(region_header) + r" \\",
        r"\hline",
    ]
    for row in rows:
        if row.presence is None:
            lines.append(r"\hline")
            marks = [rf"\multicolumn{{4}}{{c}}{{{_AVERAGE_LABEL}}}"]
        else:
            marks = [_tex("●" if present else "○") for present in row.presence]
        values = [rf"\textbf{{{_tex(cell.text)}}}" if cell.bold else _tex(cell.text) for cell in row.cells]
        lines.append(" & ".join(marks + values) + r" \\")
    lines.append(r"\hline")
    lines += [
        rf"\multicolumn{{{width}}}{{l}}{{\footnotesize {_tex(note)}}} \\"
        for note in (_caption(table), *table.footnotes)
    ]
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def _html(table: ComparisonTable) -> str:
    groups, rows = _layout(table)
    esc = html.escape
    head_groups = '<th colspan="4">Modalities</th>' + "".join(
        f'<th colspan="{len(group.regions)}">{group.heading(esc, _HTML_SUPERSCRIPT)}</th>' for group in groups
    )
    head_regions = "".join(f"<th>{esc(name)}</th>" for name in _PRESENCE_HEADER) + "".join(
        f"<th>{esc(region)}</th>" for group in groups for region in group.regions
    )
    body = []
    for row in rows:
        marks = (
            "".join(f"<td>{'●' if present else '○'}</td>" for present in row.presence)
            if row.presence
            else f'<th colspan="4">{_AVERAGE_LABEL}</th>'
        )
        values = "".join(
            f"<td><b>{esc(cell.text)}</b></td>" if cell.bold else f"<td>{esc(cell.text)}</td>" for cell in row.cells
        )
        body.append(f"<tr>{marks}{values}</tr>")
    width = 4 + sum(len(group.regions) for group in groups)
    notes = "".join(f'<tr><td colspan="{width}">{esc(note)}</td></tr>' for note in table.footnotes)
    return (
        f'<table class="passion-sweep">\n<caption>{esc(_caption(table))}</caption>\n'
        f"<thead>\n<tr>{head_groups}</tr>\n<tr>{head_regions}</tr>\n</thead>\n"
        f"<tbody>\n"
        + "\n".join(body)
        + "\n</tbody>\n"
        + (f"<tfoot>\n{notes}\n</tfoot>\n" if notes else "")
        + "</table>\n"
    )


def _csv(table: ComparisonTable) -> str:
    frame = pd.DataFrame(index=pd.Index([*SUBSET_ROWS, AVERAGE_ROW], name="subset"))
    for modality, column in enumerate(MODALITIES):
        frame[column] = [int(mask[modality]) for mask in SUBSET_MASKS] + [None]
    for config in table.configurations:
        for region in table.regions:
            for stat in ("mean", "std", "n"):
                frame[f"{config.label} {region} {stat}"] = table.stats[(config.label, region, stat)]
            frame[f"{config.label} {region} best"] = table.best[(config.label, region)].astype(int)
    for label, region in table.deltas.columns:
        frame[f"{label} {region}"] = table.deltas[(label, region)]
    text = frame.to_csv(float_format="%.6g", lineterminator="\n")
    # Footnotes as comment lines: pandas reads them back with read_csv(..., comment="#").
    notes = (table.definition, *table.footnotes) if table.definition else table.footnotes
    return text + "".join(f"# {note}\n" for note in notes)


_RENDERERS: dict[str, Callable[[ComparisonTable], str]] = {"md": _markdown, "csv": _csv, "latex": _latex, "html": _html}
FORMATS: tuple[str, ...] = tuple(_RENDERERS)


def render_table(table: ComparisonTable, fmt: str = "md") -> str:
    """``table`` as text in format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in _RENDERERS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return _RENDERERS[fmt](table)
