"""The HTML report opened in headless Chromium: the chart is inline SVG and rendered with its data points."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sim_harness.wiring import sim_config
from tests.reports.sim_month import START, SteadyMonth, steady_month
from watchdog.reports.commands import run_report
from watchdog.reports.month import month_figures
from watchdog.reports.source import ReportLedger

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (scripts/bootstrap.sh installs it)"
)


@pytest.fixture(scope="session")
def steady(tmp_path_factory: pytest.TempPathFactory) -> SteadyMonth:
    return steady_month(tmp_path_factory.getbasetemp() / "steady-month")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class _Chart(HTMLParser):
    """Collects the marker positions inside <g id="cumulative-spend"> and the other ids of the chart."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.inside = 0
        self.points: list[tuple[float, float]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "g":
            self.depth += 1
            if values.get("id") == "cumulative-spend":
                self.inside = self.depth
        if tag == "use" and self.inside:
            self.points.append((float(values.get("x") or 0), float(values.get("y") or 0)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            if self.inside == self.depth:
                self.inside = 0
            self.depth -= 1


@needs_chromium
def test_the_html_report_renders_its_chart_in_chromium(steady: SteadyMonth, tmp_path: Path) -> None:
    config = sim_config(steady.ledger_path.parent)
    assert run_report(config, month="2026-06", fmt="html", out_dir=tmp_path, now=START + 40 * 86_400) == 0
    page = tmp_path / "report-2026-06.html"
    source = page.read_text()
    assert "<svg" in source and "<?xml" not in source and "<img" not in source  # inline, self-contained

    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    parser = _Chart()
    parser.feed(dom.stdout)
    assert {"spend-chart", "cumulative-spend", "budget-line"} <= parser.ids
    # one marker per day of June, and the cumulative spend only goes up (SVG y grows downwards)
    assert len(parser.points) == 30
    xs = [x for x, _ in parser.points]
    ys = [y for _, y in parser.points]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True) and ys[0] > ys[-1]
    with ReportLedger.open(steady.ledger_path) as ledger:
        figures = month_figures(ledger, config, START, now=START + 40 * 86_400)
    assert f"{figures.eur(figures.total_usd):,.2f} €" in dom.stdout

    shot = tmp_path / "report.png"
    screenshot = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri())
    assert screenshot.returncode == 0 and shot.is_file(), screenshot.stderr[-2000:]
    assert _blue_pixels(shot.read_bytes()) > 100  # the chart's line (#1f6feb) is on screen


def _blue_pixels(png: bytes) -> int:
    """Pixels close to the chart line's colour, decoded with Pillow (matplotlib's own dependency)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = image.size
    pixels = image.load()
    assert pixels is not None
    close = 0
    for y in range(0, height, 2):
        for x in range(0, width, 2):
            r, g, b = pixels[x, y]
            close += abs(r - 0x1F) < 40 and abs(g - 0x6F) < 40 and abs(b - 0xEB) < 40
    return close
