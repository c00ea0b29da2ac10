"""The fault-and-input corpus: every command against malformed files of every kind it
reads (specs, case lists, manifests, split CSVs, arrays, checkpoints, tracking stores,
output folders). Each case ends with one ``error:`` line on stderr, the documented exit
code (usage and configuration 2, data and runtime 1), no traceback, and no file written
anywhere. Raw NIfTI inputs of ``data prepare`` have their corpus in tests/data/test_cli.py.
"""

from __future__ import annotations

import http.server
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml

from passion_sweep.cluster.tracking_server import is_healthy
from passion_sweep.sweep.spec import SPEC_FILE, parse_spec, save_spec
from tests.sweep.conftest import tiny_spec
from trainables.backbones import build_backbone
from trainables.config import ModelConfig, RunConfig

from .conftest import RUNTIME, USAGE, assert_one_line_error, files_under, run

NOT_UTF8 = "name: caf\xe9\n".encode("latin-1")
GARBAGE = bytes(range(256)) * 4


@pytest.fixture
def data(prepared_phantom: Path, tmp_path: Path) -> Path:
    """A copy of the prepared phantom (6 cases of 48^3, lists, mr2468.csv) to damage."""
    return Path(shutil.copytree(prepared_phantom, tmp_path / "data"))


def write_checkpoint(path: Path, **state: object) -> Path:
    torch.save({"format": 1, **state}, path)
    return path


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A loadable checkpoint of an untrained RFNet of width 4, patch 16."""
    config = RunConfig(model=ModelConfig(width=4, patch_size=16))
    model = build_backbone("rfnet", width=4, patch_size=16)
    return write_checkpoint(tmp_path / "model.pt", config=config.to_dict(), model=model.state_dict(), epoch=1)


def spec_file(tmp_path: Path, content: bytes | str | None = None) -> Path:
    path = tmp_path / "spec.yaml"
    text = yaml.safe_dump(tiny_spec(tmp_path / "sweeps")) if content is None else content
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def evaluate(checkpoint: Path, data: Path, cases: Path, out: Path) -> list[object]:
    return ["evaluate", checkpoint, "--data", data, "--cases", cases, "--out", out, "--device", "cpu"]


def train(data: Path, out: Path, *extra: object) -> list[object]:
    fast = ["model.width=4", "model.patch_size=16", "train.num_workers=0", "train.epochs=1", "data.val_list=null"]
    return ["train", "--data", data, "--split", data / "mr2468.csv", "--out", out, *extra] + [
        part for setting in fast for part in ("--set", setting)
    ]


# Each case damages files under tmp_path and returns the command line, the exit code
# and a pattern of the error line.
Case = Callable[[Path, Path, Path], tuple[list[object], int, str]]


def _spec(content: bytes | str, code: int, pattern: str) -> Case:
    return lambda tmp, data, ckpt: (["run", spec_file(tmp, content), "--dry-run"], code, pattern)


def _case_list(content: bytes, pattern: str) -> Case:
    def case(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
        (data / "test.txt").write_bytes(content)
        return evaluate(ckpt, data, data / "test.txt", tmp / "eval"), RUNTIME, pattern

    return case


def _manifest(content: bytes, command: str, pattern: str) -> Case:
    def case(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
        (data / "manifest.csv").write_bytes(content)
        args = {"split": ["data", "split", data], "check": ["data", "check", data], "train": train(data, tmp / "run")}
        return args[command], RUNTIME, pattern

    return case


def _split_csv(content: bytes, pattern: str) -> Case:
    def case(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
        (data / "mr2468.csv").write_bytes(content)
        return train(data, tmp / "run"), RUNTIME, pattern

    return case


def _array(damage: Callable[[bytes], bytes], command: str, pattern: str) -> Case:
    def case(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
        for kind in ("vol", "seg"):
            path = data / kind / f"Phantom_001_{kind}.npy"
            path.write_bytes(damage(path.read_bytes()))
        args = ["data", "check", data] if command == "check" else train(data, tmp / "run")
        return args, RUNTIME, pattern

    return case


def _checkpoint(make: Callable[[Path, Path], Path], command: str, code: int, pattern: str) -> Case:
    def case(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
        path = make(tmp, ckpt)
        if command == "evaluate":
            return evaluate(path, data, data / "test.txt", tmp / "eval"), code, pattern
        run_dir = tmp / "run"
        run_dir.mkdir()
        shutil.copy(path, run_dir / "checkpoint.pt")
        return train(data, run_dir, "--resume"), code, pattern

    return case


def _without(*keys: str) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, ckpt: Path) -> Path:
        state = torch.load(ckpt, weights_only=True)
        state.update(optimizer={}, passion={})
        return write_checkpoint(tmp / "damaged.pt", **{k: v for k, v in state.items() if k not in keys})

    return make


def _stale_weights(tmp: Path, ckpt: Path) -> Path:
    """The checkpoint with the weights of another version of the model (none match)."""
    state = torch.load(ckpt, weights_only=True)
    state.update(optimizer={}, passion={}, model={f"old.{key}": value for key, value in state["model"].items()})
    return write_checkpoint(tmp / "damaged.pt", **state)


def _raw(content: bytes) -> Callable[[Path, Path], Path]:
    def make(tmp: Path, ckpt: Path) -> Path:
        (tmp / "damaged.pt").write_bytes(content)
        return tmp / "damaged.pt"

    return make


def _store(content: bytes | None, uri: Callable[[Path], str], code: int, pattern: str) -> Case:
    def case(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
        if content is not None:
            (tmp / "store.db").write_bytes(content)
        return ["table", "--tracking-uri", uri(tmp)], code, pattern

    return case


def _foreign_sqlite(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
    with sqlite3.connect(tmp / "other.db") as database:
        database.execute("CREATE TABLE notes (text)")
    return ["table", "--tracking-uri", tmp / "other.db"], USAGE, r"is an sqlite database but not an MLflow store"


def _identity(content: bytes) -> Case:
    """A sweep folder whose ``sweep.json`` is damaged, asked for its status."""

    def case(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
        spec = parse_spec(tiny_spec(tmp / "sweeps"))
        spec.sweep_dir.mkdir(parents=True)
        save_spec(spec, spec.sweep_dir / SPEC_FILE)
        (spec.sweep_dir / "sweep.json").write_bytes(content)
        return ["status", spec.sweep_dir], RUNTIME, r"cannot read the sweep's identity .*sweep.json"

    return case


def _output_is_a_file(command: str) -> Case:
    def case(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
        (tmp / "out").write_text("a file\n")
        args = {
            "train": train(data, tmp / "out"),
            "evaluate": evaluate(ckpt, data, data / "test.txt", tmp / "out"),
            "synth": ["data", "synth", tmp / "out", "--cases", 1],
        }
        return args[command], USAGE, r"out.* (is|exists as) a file|Directory .* is a file"

    return case


def _resume_missing(tmp: Path, data: Path, ckpt: Path) -> tuple[list[object], int, str]:
    return train(data, tmp / "never-trained", "--resume"), USAGE, r"--resume: no run folder .*never-trained"


CASES: dict[str, Case] = {
    "spec not UTF-8": _spec(NOT_UTF8, USAGE, r"not UTF-8 text \(byte 0xe9 at offset 9\)"),
    "spec empty": _spec(b"", USAGE, r"expected a mapping of spec keys, got NoneType"),
    "spec binary": _spec(GARBAGE, USAGE, r"not UTF-8 text|not valid YAML"),
    "spec a list": _spec("- name: x\n", USAGE, r"expected a mapping of spec keys, got list"),
    "spec bad YAML": _spec("name: [x\n", USAGE, r"not valid YAML at line 2"),
    "spec tab indent": _spec("name: x\n\tdata: 1\n", USAGE, r"not valid YAML at line 2"),
    "spec duplicate key": _spec("name: x\nname: y\n", USAGE, r"duplicate key 'name'"),
    "spec alias bomb": _spec(
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdef", "bcdefg")),
        USAGE,
        r"refused: it expands to more than",
    ),
    "spec python tag": _spec("name: !!python/name:os.system\n", USAGE, r"could not determine a constructor"),
    "spec NaN": _spec(
        yaml.safe_dump({**tiny_spec(Path("sweeps")), "train": {"lr": float("nan")}}),
        USAGE,
        r"train.lr must be a finite",
    ),
    "spec unknown key": _spec("name: x\nnmae: y\n", USAGE, r"nmae: unknown key \(did you mean 'name'\?\)"),
    "case list not UTF-8": _case_list(b"Phantom_001\n\xff\n", r"test.txt: not UTF-8 text \(byte 0xff at offset 12\)"),
    "case list bad name": _case_list(b"Phantom 001\n", r"test.txt:1: 'Phantom 001' is not a case name"),
    "case list binary": _case_list(GARBAGE, r"test.txt: not UTF-8 text"),
    "manifest not UTF-8 (split)": _manifest(b"case\xff\n", "split", r"manifest.csv: not UTF-8 text"),
    "manifest not UTF-8 (check)": _manifest(b"case\xff\n", "check", r"manifest.csv: not UTF-8 text"),
    "manifest not UTF-8 (train)": _manifest(b"case\xff\n", "train", r"manifest.csv: not UTF-8 text"),
    "manifest empty": _manifest(b"", "split", r"manifest.csv:1: header must be"),
    "manifest bad row": _manifest(
        b"case,size_x,size_y,size_z,background,ncr,ed,et\nPhantom_001,48,48\n", "check", r"manifest.csv:2: malformed"
    ),
    "split CSV not UTF-8": _split_csv(b"data_name,mask_id\n\xff\n", r"mr2468.csv: not UTF-8 text"),
    "split CSV empty": _split_csv(b"", r"mr2468.csv:1: header must be"),
    "split CSV bad row": _split_csv(
        b'data_name,mask_id,mask,pos_mask_ids\nPhantom_001,1,"[True, Ture, True, True]","[1]"\n', r"mr2468.csv:2: "
    ),
    "array empty (check)": _array(lambda raw: b"", "check", r"problem\(s\) in .*: see above"),
    "array truncated (check)": _array(lambda raw: raw[:300], "check", r"problem\(s\) in .*: see above"),
    "array empty (train)": _array(lambda raw: b"", "train", r"cannot read .*Phantom_001_\w+.npy"),
    "array truncated (train)": _array(lambda raw: raw[: len(raw) // 2], "train", r"cannot read .*Phantom_001_\w+.npy"),
    "array not npy (train)": _array(lambda raw: b"not an array\n", "train", r"cannot read .*Phantom_001_\w+.npy"),
    "checkpoint empty": _checkpoint(_raw(b""), "evaluate", RUNTIME, r"cannot read checkpoint .*damaged.pt"),
    "checkpoint text": _checkpoint(_raw(b"weights\n"), "evaluate", RUNTIME, r"cannot read checkpoint .*damaged.pt"),
    "checkpoint without config": _checkpoint(
        _without("config"), "evaluate", RUNTIME, r"checkpoint .*damaged.pt lacks config"
    ),
    "checkpoint without model": _checkpoint(_without("model"), "evaluate", RUNTIME, r"not a passion-sweep checkpoint"),
    "checkpoint without epoch (resume)": _checkpoint(
        _without("epoch", "passion"), "train", RUNTIME, r"checkpoint.pt lacks passion, epoch"
    ),
    "checkpoint of another model version (resume)": _checkpoint(
        _stale_weights, "train", RUNTIME, r"checkpoint.pt does not fit this run's model: Error\(s\) in loading"
    ),
    "resume a missing folder": _resume_missing,
    "sweep identity truncated": _identity(b'{"sweep_id": "tiny-'),
    "sweep identity not UTF-8": _identity(b"\xff\xfe"),
    "sweep identity not a mapping": _identity(b"[]"),
    "store missing": _store(None, lambda tmp: str(tmp / "none.db"), USAGE, r"no MLflow store at .*none.db"),
    "store not sqlite": _store(b"a,b\n1,2\n", lambda tmp: str(tmp / "store.db"), USAGE, r"is not an sqlite database"),
    "store empty file": _store(b"", lambda tmp: f"sqlite:///{tmp}/store.db", USAGE, r"is not an sqlite database"),
    "store foreign sqlite": _foreign_sqlite,
    "store unknown scheme": _store(None, lambda tmp: "foo://bar", USAGE, r"--tracking-uri foo://bar: not an MLflow"),
    "store file scheme": _store(None, lambda tmp: f"file://{tmp}", USAGE, r"not an MLflow store this command reads"),
    "store server down": _store(None, lambda tmp: "http://127.0.0.1:9", RUNTIME, r"no MLflow tracking server answers"),
    "train out is a file": _output_is_a_file("train"),
    "evaluate out is a file": _output_is_a_file("evaluate"),
    "synth out is a file": _output_is_a_file("synth"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input(name: str, tmp_path: Path, data: Path, checkpoint: Path) -> None:
    args, code, pattern = CASES[name](tmp_path, data, checkpoint)
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()}
    result = run(*args)
    assert_one_line_error(result, code, pattern)
    after = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*") if path.is_file()}
    # train records its (complete) config.json before the first batch reads the arrays;
    # a rerun replaces it. Nothing else may appear or change.
    new = {path.relative_to(tmp_path).as_posix() for path in set(after) - set(before)}
    assert new <= {"run/config.json"}, new
    assert {path: after[path] for path in before} == before, "a failing command changed its input"


# Read-only and full output folders: real file systems (a tmpfs mounted read-only, and
# one that is full), since root, who runs CI, writes through file permissions.


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mounts tmpfs folders with the given options under tmp_path (skips without privileges)."""
    points: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mount{len(points)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        points.append(point)
        return point

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "--lazy", str(point)], check=True)  # a failed torch.save may hold a file a while


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as stream, pytest.raises(OSError):
        while True:
            stream.write(b"\0" * 4096)


@pytest.mark.parametrize("mode", ["read-only", "full"])
@pytest.mark.parametrize("command", ["train", "split", "missing-rates", "synth"])
def test_output_folder_read_only_or_full(
    mode: str, command: str, prepared_phantom: Path, mounted: Callable[[str], Path]
) -> None:
    folder = mounted("size=1m" if mode == "read-only" else "size=64k")
    if command == "split":  # the data set's folder is the mount: it holds the manifest
        shutil.copy(prepared_phantom / "manifest.csv", folder / "manifest.csv")
    if mode == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        _fill(folder)
    before = files_under(folder)
    args = {
        "train": train(prepared_phantom, folder / "run"),
        "split": ["data", "split", folder],
        "missing-rates": ["data", "split", prepared_phantom, "--missing-rates", "mr2468", "--out", folder / "s.csv"],
        "synth": ["data", "synth", folder / "raw", "--cases", 2, "--shape", "16,16,16"],
    }[command]
    assert_one_line_error(run(*args), RUNTIME, r"Read-only file system|No space left on device")
    assert files_under(folder) == before


def test_a_disk_that_fills_up_during_training_is_one_line(
    prepared_phantom: Path, mounted: Callable[[str], Path]
) -> None:
    folder = mounted("size=64k")  # room for config.json, not for a checkpoint
    result = run(*train(prepared_phantom, folder / "run"))
    assert_one_line_error(
        result, RUNTIME, r"cannot write checkpoint .*checkpoint.pt: the write failed \(is the disk full"
    )
    assert files_under(folder) == ["run/config.json"]


def test_a_tracking_server_behind_an_authenticating_proxy_counts_as_answering() -> None:
    class AskForCredentials(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), AskForCredentials) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert is_healthy(url, any_answer=True) and not is_healthy(url)
        server.shutdown()
