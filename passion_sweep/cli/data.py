"""``passion-sweep data``: synthesize, prepare, split and check BraTS data sets."""

from __future__ import annotations

from pathlib import Path

import click

from trainables.data import (
    NORMALIZATIONS,
    REFERENCE_LISTS,
    REFERENCE_SEED,
    DatasetReport,
    check_dataset,
    parse_missing_rates,
    prepare_dataset,
    reference_split,
    reference_splits,
    split_cases,
    synthesize_dataset,
    write_missing_rate_split,
    write_reference_lists,
    write_reference_split,
)
from trainables.errors import ConfigError, DataError

__all__ = ["data"]

_DIR = click.Path(path_type=Path)
_FRACTION = click.FloatRange(0, 1, max_open=True)


def _parse_shape(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(size) for size in value.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3:
        raise click.BadParameter(f"expected three sizes like 96,96,96, got {value!r}") from None
    return shape


def _parse_rates(value: str) -> dict[str, float]:
    try:
        return parse_missing_rates(value)
    except ConfigError as error:
        raise click.BadParameter(str(error), param_hint="'--missing-rates'") from None


def _availability(counts: dict[str, int]) -> str:
    return ", ".join(f"{modality} {count}" for modality, count in counts.items())


@click.group()
def data() -> None:
    """Synthesize, prepare, split and check BraTS data sets."""


@data.command()
@click.argument("out", type=_DIR)
@click.option("--cases", type=click.IntRange(min=1), default=8, show_default=True, help="Number of cases.")
@click.option("--shape", default="96,96,96", show_default=True, callback=_parse_shape, help="Volume size X,Y,Z.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed.")
def synth(out: Path, cases: int, shape: tuple[int, ...], seed: int) -> None:
    """Write a synthetic BraTS-like data set (NIfTI, BraTS layout) into the new folder OUT."""
    names = synthesize_dataset(out, cases=cases, shape=shape, seed=seed)
    click.echo(f"wrote {len(names)} phantom cases of shape {'x'.join(map(str, shape))} to {out}")


@data.command()
@click.argument("src", type=_DIR)
@click.argument("out", type=_DIR)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Parallel processes.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
@click.option(
    "--normalization",
    type=click.Choice(NORMALIZATIONS),
    default="reference",
    show_default=True,
    help="reference: z-score every voxel of the crop with the brain's statistics (background -mean/std), as the "
    "reference and RFNet's download; zero-background: the same, with 0 outside the brain (not the reference).",
)
def prepare(src: Path, out: Path, workers: int, progress: bool, normalization: str) -> None:
    """Preprocess the BraTS NIfTI folder SRC into arrays in OUT as the reference does (vol/, seg/,
    preprocessing.json, manifest.csv); BraTS20_Training_NNN folders get RFNet's HG_/LG_ names."""
    rows = prepare_dataset(src, out, workers=workers, progress=progress, normalization=normalization)
    click.echo(f"prepared {len(rows)} cases into {out} ({normalization} normalization)")


@data.command()
@click.argument("data_dir", metavar="DIR", type=_DIR)
@click.option("--test", type=_FRACTION, default=0.2, show_default=True, help="Fraction of cases for test.txt.")
@click.option("--val", type=_FRACTION, default=0.1, show_default=True, help="Fraction of cases for val.txt.")
@click.option("--seed", type=click.IntRange(min=0), default=REFERENCE_SEED, show_default=True, help="Random seed.")
@click.option(
    "--missing-rates",
    "rates",
    help="Write a missing-rate split of DIR/train.txt instead: flair=0.6,t1ce=0.4,t1=0.2,t2=0.8 or mr2468 "
    "(tenths for t1, t1ce, flair, t2).",
)
@click.option(
    "--reference",
    help="Use the PASSION reference's files instead of drawing: alone, brats2020 writes RFNet's "
    "train/val/test lists; with --missing-rates mrABCD (or as brats2020-mrABCD) the reference's split CSV.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="CSV file of the missing-rate split.")
def split(
    data_dir: Path, test: float, val: float, seed: int, rates: str | None, reference: str | None, out: Path | None
) -> None:
    """Write train.txt, val.txt and test.txt into DIR, or with --missing-rates a split CSV."""
    builtin, parsed_rates = None, None
    if rates is not None and reference is None:
        parsed_rates = _parse_rates(rates)
    if reference is not None and (rates is not None or reference not in REFERENCE_LISTS):
        builtin = reference_split(reference, rates)
    if (rates is not None or builtin is not None) != (out is not None):
        raise click.UsageError(
            "--out names the CSV of a missing-rate split (--missing-rates, or --reference brats2020-mrABCD): "
            "pass it with one, and only then"
        )
    if builtin is not None:
        result = write_reference_split(data_dir, out, builtin)
        click.echo(
            f"wrote {out}: the reference split {builtin.name}, {len(result.names)} cases; "
            f"available {_availability(result.modality_counts())}"
        )
    elif reference is not None:
        lists = write_reference_lists(data_dir, reference)
        click.echo(_list_sizes(lists) + f" cases of the reference lists {reference} written to {data_dir}")
    elif parsed_rates is not None:
        result = write_missing_rate_split(data_dir, out, rates=parsed_rates, seed=seed)
        click.echo(f"wrote {out}: {len(result.names)} cases; available {_availability(result.modality_counts())}")
    else:
        click.echo(_list_sizes(split_cases(data_dir, test=test, val=val, seed=seed)) + f" cases written to {data_dir}")


def _list_sizes(lists: dict[str, list[str]]) -> str:
    return ", ".join(f"{subset} {len(names)}" for subset, names in lists.items())


_BACKGROUND_TEXT = {
    "reference": "-mean/std per modality, as the reference",
    "zero": "0, not the reference's -mean/std (zero-background)",
    "varies": "not constant at the corners",
}


def _preprocessing_rows(report: DatasetReport) -> list[tuple[str, str]]:
    """What matters to a model: how the data were normalised and stored, next to the reference."""
    recorded = report.preprocessing
    rows = [
        (
            "preprocessing",
            ", ".join(f"{key} {value}" for key, value in sorted(recorded.items()))
            if recorded
            else "not recorded (not written by `data prepare`, e.g. RFNet's download)",
        )
    ]
    if report.backgrounds():
        rows.append(
            (
                "background",
                "; ".join(f"{_BACKGROUND_TEXT[kind]}: {n} cases" for kind, n in report.backgrounds().items()),
            )
        )
    if report.dtypes():
        rows.append(
            (
                "volume dtype",
                "; ".join(
                    f"{dtype}: {n} cases"
                    + ("" if dtype == "float32" else " (the reference's is float32; read as float32)")
                    for dtype, n in report.dtypes().items()
                ),
            )
        )
    return rows


def _split_rows(report: DatasetReport) -> list[tuple[str, str]]:
    """The split's availability per modality, next to the nominal rates, and whether it is the reference's."""
    split = report.split
    if split is None:
        return []
    cases = len(split.names)
    nominal = report.nominal_rates
    available = ", ".join(
        f"{modality} {count} ({100 * count / cases:.1f}%"
        + (f"; nominal {100 * (1 - nominal[modality]):.0f}%)" if nominal else ")")
        for modality, count in split.modality_counts().items()
    )
    origin = (
        f"the reference split {report.reference_split}"
        if report.reference_split
        else "not one of the reference's splits"
    )
    return [("split", f"{cases} cases, {origin}"), ("available", available)]


def _summary_rows(report: DatasetReport) -> list[tuple[str, str]]:
    shapes = [case.shape for case in report.cases if case.shape]
    counts = [case.label_counts for case in report.cases if case.label_counts]
    rows = [("cases", str(len(report.cases)))]
    if shapes:
        for name, pick in (("smallest", min), ("largest", max)):
            rows.append((f"{name} shape", "x".join(str(pick(shape[a] for shape in shapes)) for a in range(3))))
    if counts:
        voxels = sum(sum(count) for count in counts)
        share = ", ".join(
            f"{name} {100 * sum(c[k] for c in counts) / voxels:.2f}%" for k, name in enumerate(("ncr", "ed", "et"), 1)
        )
        rows.append(("label voxels", share))
    lists = ", ".join(f"{subset} {size}" for subset, size in report.case_lists.items()) or "none"
    rows.append(("case lists", lists))
    rows += _preprocessing_rows(report) + _split_rows(report)
    rows.append(("problems", str(len(report.problems))))
    return rows


@data.command()
@click.argument("data_dir", metavar="DIR", type=_DIR)
@click.option(
    "--split",
    "split_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Missing-rate split to check too: a CSV file or a reference split such as brats2020-mr2468.",
)
def check(data_dir: Path, split_csv: Path | None) -> None:
    """Check the data set DIR (prepared, or in the reference layout: indexed on first use) and a split;
    exit 1 on any problem."""
    if split_csv is not None and not split_csv.exists() and str(split_csv) in reference_splits():
        split_csv = reference_splits()[str(split_csv)].path
    report = check_dataset(data_dir, split_csv=split_csv)
    rows = _summary_rows(report)
    width = max(len(key) for key, _ in rows)
    click.echo(f"data set {data_dir}")
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")
    for problem in report.problems:
        click.echo(f"  problem: {problem}")
    if not report.ok:
        raise DataError(f"{len(report.problems)} problem(s) in {data_dir}: see above")
