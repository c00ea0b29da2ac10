"""Regenerate the pictures in docs/images/ from a finished demo sweep.

- ``table-plot.png``: ``passion-sweep table --plot`` over the sweep's MLflow store;
- ``mlflow-compare.png``: MLflow's comparison of the sweep's trial runs, its parallel
  coordinates plotting the grid values (backbone, split, method, seed) and the searched
  PASSION coefficients against the test Dice, as a browser shows it.

Not part of the package, its tests or CI: it drives a headless Chromium with Playwright,
installed in an environment of their own, and runs the project's ``passion-sweep`` and
``mlflow`` from ``--bin``. The commands that make the demo run and call this script are
in docs/tables.md, "A demo run, as a user sees it".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

IMAGES = Path(__file__).parent / "images"
# The axes of the parallel-coordinates plot: the grid keys, then what the search varied.
PLOT_PARAMS = ("backbone", "split", "method", "seed", "passion.temperature", "passion.kl_weight")
PLOT_METRIC = "test/dice/mean/WT"
WIDTH, HEIGHT = 1280, 800  # wide enough for the plot's eight axes


def plot_table(passion_sweep: Path, store_uri: str, experiment: str, out: Path) -> None:
    """The comparison plot exactly as a user makes it, with the project's own command."""
    subprocess.run(
        [str(passion_sweep), "table", "--tracking-uri", store_uri, "--experiment", experiment, "--plot", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _api(server: str, endpoint: str, body: dict[str, Any]) -> Any:
    """One call of MLflow's REST API, answered as JSON."""
    request = urllib.request.Request(
        f"{server}/api/2.0/mlflow/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def wait_for_server(server: str, timeout_s: float = 180) -> None:
    """Return once ``mlflow ui`` answers; it takes a while to start on a busy machine."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{server}/health", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def compare_url(server: str, experiment: str) -> str:
    """The comparison view of every finished trial run (runs with grid params) of ``experiment``."""
    found = _api(server, "experiments/search", {"filter": f"name = '{experiment}'", "max_results": 1})
    ids = [found["experiments"][0]["experiment_id"]]
    runs = _api(server, "runs/search", {"experiment_ids": ids, "filter": "params.method != ''", "max_results": 100})
    run_ids = [run["info"]["run_id"] for run in runs.get("runs", []) if run["info"]["status"] == "FINISHED"]
    query = urllib.parse.urlencode({"runs": json.dumps(run_ids), "experiments": json.dumps(ids)})
    return f"{server}/#/compare-runs?{query}"


def choose(page: Page, combobox: int, wanted: tuple[str, ...]) -> None:
    """Select ``wanted``, in that order (the order of the plot's axes), in a multi-select
    of the plot panel. The option list is virtual, so options off screen cannot be
    clicked: each one is reached with the keyboard."""
    box = page.get_by_role("combobox").nth(combobox)
    for name in wanted:
        box.click()
        seen: set[str] = set()
        while name not in seen:
            page.keyboard.press("ArrowDown")
            active = page.locator(f"#{box.get_attribute('aria-activedescendant')}")
            option = active.get_attribute("aria-label") or active.inner_text()
            if option in seen:
                raise LookupError(f"{name} is not among the options of the comparison view")
            seen.add(option)
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")


def screenshot_compare(chromium: Path, url: str, out: Path) -> None:
    """The comparison view with the plot's axes chosen, cropped to the plot panel."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium))
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.goto(url)
        page.get_by_text("Parallel Coordinates Plot").wait_for(timeout=120_000)
        # The side bar and the assistant panel would leave the plot a third of the width.
        page.get_by_role("button", name="Toggle sidebar").click()
        if page.get_by_role("button", name="Close").is_visible():
            page.get_by_role("button", name="Close").click()
        page.get_by_role("button", name="Clear All").click()
        choose(page, 0, PLOT_PARAMS)
        choose(page, 1, (PLOT_METRIC,))
        page.wait_for_timeout(2_000)  # the plot redraws after each choice
        top = page.get_by_text("Comparing").first.bounding_box()
        bottom = page.get_by_role("button", name="Run details").bounding_box()
        assert top is not None and bottom is not None, "the comparison view has changed its layout"
        page.screenshot(
            path=str(out), clip={"x": 0, "y": top["y"] - 8, "width": WIDTH, "height": bottom["y"] - top["y"] + 8}
        )
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("storage", type=Path, help="the sweep's ray.storage_path, which holds mlflow.db")
    parser.add_argument("--experiment", default="demo", help="MLflow experiment of the sweep (default: demo)")
    parser.add_argument("--bin", type=Path, default=Path(".venv/bin"), help="where passion-sweep and mlflow are")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--port", type=int, default=5077, help="port of the temporary mlflow ui")
    args = parser.parse_args()

    store_uri = f"sqlite:///{(args.storage / 'mlflow.db').resolve()}"
    IMAGES.mkdir(exist_ok=True)
    plot_table(args.bin / "passion-sweep", store_uri, args.experiment, IMAGES / "table-plot.png")

    server = f"http://127.0.0.1:{args.port}"
    ui = subprocess.Popen(
        [
            str(args.bin / "mlflow"),
            "ui",
            "--backend-store-uri",
            store_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: mlflow ui starts workers of its own
    )
    try:
        wait_for_server(server)
        screenshot_compare(args.chromium, compare_url(server, args.experiment), IMAGES / "mlflow-compare.png")
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a busy server can ignore SIGTERM for long
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()


if __name__ == "__main__":
    main()
