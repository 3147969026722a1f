"""The report and the model card as GitHub shows them: rendered as GitHub-flavoured Markdown (tables, raw HTML such
as <br> and <details>) and screenshotted in headless Chromium. What a reviewer reads holds no Python repr, no
number longer than 4 significant digits in a table cell, and every gate's bound.

The screenshots are kept in test-artifacts/certify/ (git-ignored; MLCI_TEST_ARTIFACTS moves it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sample_certification as sample
from markdown_it import MarkdownIt

from mlci.certify import model_card, report, summary

ARTIFACTS = Path(os.environ.get("MLCI_TEST_ARTIFACTS") or Path(__file__).resolve().parents[3] / "test-artifacts")
# A decimal number, not a part of a version (3.11.2) or an address.
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?:e[-+]?\d+)?(?![\w]|\.\d)")
STYLE = """body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5;
max-width:1180px;margin:24px auto;color:#1f2328}table{border-collapse:collapse;margin:12px 0}
th,td{border:1px solid #d1d9e0;padding:6px 13px;vertical-align:top}tr:nth-child(2n){background:#f6f8fa}
code,pre{background:#f6f8fa;font-family:monospace;font-size:12px}pre{padding:12px}"""


class Cells(HTMLParser):
    """The text of every table row, cell by cell, and the whole text."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.text: list[str] = []
        self.tables = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self.tables += 1
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" / ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def gfm(markdown: str) -> str:
    """GitHub-flavoured Markdown as HTML: CommonMark with tables, strikethrough and raw HTML."""
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)


def parsed(markdown: str) -> Cells:
    cells = Cells()
    cells.feed(gfm(markdown))
    return cells


def significant(number: str) -> int:
    return len(number.split("e")[0].replace(".", "").lstrip("0"))


def long_numbers(cells: Cells) -> list[tuple[str, str]]:
    return [(cell, n) for row in cells.rows for cell in row for n in DECIMAL.findall(cell) if significant(n) > 4]


def bounds(gate: dict) -> list[str]:
    """What each gate's row must show of its bound, read from the certificate's own thresholds."""
    threshold = gate["threshold"]
    return {
        "data": lambda: ["data contract (≥ 100 rows"],
        "quality": lambda: [summary.bound_text(text) for text in threshold.values()],
        "champion": lambda: [f"tolerance {summary.figure(t, 4)}" for t in threshold.values()],
        "serving": lambda: [f"{summary.figure(threshold['p99_ms'])} ms", f"{threshold['min_requests_per_s']} req/s"],
        "robustness": lambda: ["4xx (bound: every one)"],
        "parity": lambda: [f"≤ {summary.figure(threshold)}"],
        "reproducibility": lambda: ["(bound: clean)"],
    }[gate["gate"]]()


def gate_rows(cells: Cells, document: dict) -> dict[str, str]:
    names = {g["gate"] for g in document["gates"]}
    rows = [row for row in cells.rows if len(row) == 4 and row[0] in names]
    return {row[0]: " ".join(row[2:]) for row in rows[: len(names)]}


def check(markdown: str, document: dict, tables: int) -> Cells:
    cells = parsed(markdown)
    text = "".join(cells.text)
    assert cells.tables >= tables, gfm(markdown)[:2000]
    assert "{'" not in text and "['" not in text and "python -m" not in text
    assert long_numbers(cells) == []
    shown = gate_rows(cells, document)
    assert set(shown) == {g["gate"] for g in document["gates"]}
    for gate in document["gates"]:
        if gate["status"] != "error":
            assert all(bound in shown[gate["gate"]] for bound in bounds(gate)), (gate["gate"], shown[gate["gate"]])
    return cells


def screenshot(markdown: str, title: str, scratch: Path, height: int) -> Path:
    page = scratch / f"{title}.html"
    page.write_text(f"<!doctype html><meta charset=utf-8><style>{STYLE}</style><title>{title}</title>{gfm(markdown)}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = ARTIFACTS / f"{title}.png"
    png.unlink(missing_ok=True)
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
        f"--user-data-dir={scratch / 'chromium'}", f"--window-size=1280,{height}", f"--screenshot={png}",
        page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and png.is_file() and png.stat().st_size > 10_000, done.stderr[-2000:]
    return png


def test_the_report_and_the_model_card_read_cleanly_as_github_renders_them(tmp_path, capsys):
    passed = sample.document(sample.gates())
    failed = sample.document(sample.gates(faults=True))
    out = {name: tmp_path / name for name in ("passed", "failed", "card")}
    for folder in out.values():
        folder.mkdir()
    latencies = [1.0 + (i % 17) / 10 for i in range(500)]
    reports = {
        "passed": report.write(out["passed"], passed, sample.context(), latencies, None).read_text(),
        "failed": report.write(out["failed"], failed, sample.context(faults=True), latencies, None).read_text(),
    }
    card = model_card.write(
        out["card"], passed, sample.served(out["card"]), sample.context(), "## Owners\n\nML", "model-card.md"
    )
    check(reports["passed"], passed, tables=2)
    rows = check(reports["failed"], failed, tables=2).rows
    assert ["parity", "⚠️ error", "could not run (the reason below says why)", "-"] in rows
    check(card.read_text(), passed, tables=8)
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (scripts/system-packages.sh installs it): no screenshots")
    shots = [
        screenshot(reports["failed"], "certification-report", tmp_path, 1250),
        screenshot(card.read_text(), "model-card", tmp_path, 2700),
    ]
    with capsys.disabled():
        print("\nscreenshots: " + ", ".join(str(shot) for shot in shots))
