"""The certification report: Markdown with tables and plots, for a PR comment and a job summary.

The plots are Mermaid charts, which GitHub draws in comments, job summaries and pull request bodies where a
relative image link would be broken; the same plots are written as PNG files beside the report.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..files import write_atomic

ICONS = {"pass": "✅ pass", "fail": "❌ fail", "error": "⚠️ error"}


def _save(figure: Any, out: Path, name: str, title: str) -> tuple[str, str]:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    write_atomic(out / name, png.getvalue())
    plt.close(figure)
    return title, name


def _shares(metrics: dict[str, float]) -> tuple[list[str], list[str]]:
    """The metrics that lie within [0, 1] (accuracy, AUC, R² of a fair model), and the others (RMSE, MAE, log loss
    in their own units): each group is drawn on its own axis."""
    shares = sorted(n for n, v in metrics.items() if 0.0 <= v <= 1.0)
    return shares, sorted(n for n in metrics if n not in shares)


def _points(plots: Path | None, name: str, columns: set[str]) -> Any:
    """The DVC plot `name` of the project's plots folder, when it exists and has these columns; else None."""
    if plots is None or not (plots / name).is_file():
        return None
    import pandas as pd

    points = pd.read_csv(plots / name)
    return points if columns <= set(points.columns) else None


def _plots(
    out: Path,
    metrics: dict[str, float],
    champion: dict[str, float] | None,
    latencies_ms: list[float],
    plots: Path | None,
) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    groups = [group for group in _shares(metrics) if group]
    if groups:
        figure, panels = plt.subplots(1, len(groups), figsize=(6 * len(groups), 3), squeeze=False)
        for axes, names in zip(panels[0], groups, strict=True):
            positions = range(len(names))
            axes.bar([p - 0.2 for p in positions], [metrics[n] for n in names], width=0.4, label="candidate")
            if champion:
                axes.bar(
                    [p + 0.2 for p in positions], [champion.get(n, 0.0) for n in names], width=0.4, label="champion"
                )
            axes.set_xticks(list(positions), names)
            axes.legend()
        figure.suptitle("Held-out metrics")
        made.append(_save(figure, out, "metrics.png", "Metrics against the champion"))
    if latencies_ms:
        figure, axes = plt.subplots(figsize=(6, 3))
        axes.hist(latencies_ms, bins=50)
        axes.set_xlabel("latency (ms)")
        axes.set_title("Serving latency under load")
        made.append(_save(figure, out, "latency.png", "Serving latency"))
    roc = _points(plots, "roc.csv", {"fpr", "tpr"})
    if roc is not None:
        figure, axes = plt.subplots(figsize=(4, 4))
        axes.plot(roc["fpr"], roc["tpr"])
        axes.plot([0, 1], [0, 1], linestyle=":")
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
        axes.set_title("ROC (held-out set)")
        made.append(_save(figure, out, "roc.png", "ROC curve"))
    predicted = _points(plots, "predicted.csv", {"actual", "predicted"})
    if predicted is not None:
        figure, axes = plt.subplots(figsize=(4, 4))
        axes.scatter(predicted["actual"], predicted["predicted"], s=6)
        bounds = [float(predicted.min().min()), float(predicted.max().max())]
        axes.plot(bounds, bounds, linestyle=":")
        axes.set_xlabel("actual")
        axes.set_ylabel("predicted")
        axes.set_title("Predicted against actual (held-out set)")
        made.append(_save(figure, out, "predicted.png", "Predicted against actual"))
    return made


def write(
    out: Path,
    certificate: dict[str, Any],
    metrics: dict[str, float],
    thresholds: dict[str, str],
    champion: dict[str, float] | None,
    latencies_ms: list[float],
    plots_dir: Path | None,
) -> Path:
    """report.md and its plots in `out` (with the project's DVC plots from `plots_dir`: ROC, or predicted against
    actual); the report's path."""
    plots = _plots(out, metrics, champion, latencies_ms, plots_dir)
    model = certificate["model"]
    lines = [
        f"## Certification of {model['name']} version {model['version']}: {ICONS[certificate['verdict']]}",
        "",
        f"Served artifact ({model['runtime']}) sha256 `{model['sha256']}`, commit `{certificate['git']['commit']}`.",
        "",
        "| gate | verdict | measured | threshold | reason |",
        "| --- | --- | --- | --- | --- |",
    ]
    for gate in certificate["gates"]:
        lines.append(
            f"| {gate['gate']} | {ICONS[gate['status']]} | {_cell(gate['measured'])} | "
            f"{_cell(gate['threshold'])} | {_cell(gate['reason'])} |"
        )
    lines += ["", "| metric | candidate | threshold | champion |", "| --- | --- | --- | --- |"]
    for name in sorted(metrics):
        theirs = f"{champion[name]:.4f}" if champion and name in champion else "-"
        lines.append(f"| {name} | {metrics[name]:.4f} | {thresholds.get(name, '-')} | {theirs} |")
    lines.append("")
    lines += _charts(metrics, champion, latencies_ms, plots_dir)
    if plots:
        lines += ["PNG plots beside this report: " + ", ".join(f"`{file}` ({title})" for title, file in plots), ""]
    path = out / "report.md"
    write_atomic(path, "\n".join(lines))
    return path


def _chart(title: str, x_axis: str, y_axis: str, series: list[str]) -> list[str]:
    return (
        ["```mermaid", "xychart-beta", f'    title "{title}"', f"    x-axis {x_axis}", f"    y-axis {y_axis}"]
        + [f"    {line}" for line in series]
        + ["```", ""]
    )


def _numbers(values: Any) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"


def _charts(
    metrics: dict[str, float], champion: dict[str, float] | None, latencies_ms: list[float], plots: Path | None
) -> list[str]:
    """Mermaid xychart blocks: metrics (bars) against the champion (line), shares on a 0-1 axis and the others on
    their own; the latency histogram; the ROC, or a regression's mean prediction per decile of the actual value."""
    import numpy as np

    lines: list[str] = []
    legend = "bars: candidate" + (", line: champion" if champion else "")
    for names in _shares(metrics):
        if not names:
            continue
        series = [f"bar {_numbers(metrics[n] for n in names)}"]
        if champion:
            series.append(f"line {_numbers(champion.get(n, 0.0) for n in names)}")
        values = [metrics[n] for n in names] + [champion.get(n, 0.0) for n in names if champion]
        low, high = min(0.0, *values), max(1.0, *values)
        axis = '"value" 0 --> 1' if (low, high) == (0.0, 1.0) else f'"value" {low:.4g} --> {high * 1.1:.4g}'
        lines += _chart(f"Held-out metrics ({legend})", "[" + ", ".join(f'"{n}"' for n in names) + "]", axis, series)
    if latencies_ms:
        counts, edges = np.histogram(np.asarray(latencies_ms), bins=12)
        labels = "[" + ", ".join(f'"{edges[i]:.2g}"' for i in range(len(counts))) + "]"
        lines += _chart(
            "Serving latency under load (requests per bin, ms)",
            labels,
            f'"requests" 0 --> {int(counts.max())}',
            [f"bar {_numbers(counts)}"],
        )
    roc = _points(plots, "roc.csv", {"fpr", "tpr"})
    if roc is not None:
        grid = np.linspace(0.0, 1.0, 21)
        ordered = roc.sort_values(["fpr", "tpr"])
        tpr = np.interp(grid, ordered["fpr"].to_numpy(), ordered["tpr"].to_numpy())
        lines += _chart(
            "ROC (held-out set)",
            '"false positive rate" 0 --> 1',
            '"true positive rate" 0 --> 1',
            [f"line {_numbers(tpr)}", f"line {_numbers(grid)}"],
        )
    predicted = _points(plots, "predicted.csv", {"actual", "predicted"})
    if predicted is not None and len(predicted) >= 10:
        ordered = predicted.sort_values("actual")
        deciles = np.array_split(np.arange(len(ordered)), 10)
        actual = [float(ordered["actual"].iloc[d].mean()) for d in deciles]
        mean = [float(ordered["predicted"].iloc[d].mean()) for d in deciles]
        low, high = min(actual + mean), max(actual + mean)
        lines += _chart(
            "Mean prediction per tenth of the held-out rows by actual value (line 2: perfect)",
            "[" + ", ".join(f'"{a:.3g}"' for a in actual) + "]",
            f'"predicted" {low:.4g} --> {high:.4g}',
            [f"line {_numbers(mean)}", f"line {_numbers(actual)}"],
        )
    return lines


def append_to_job_summary(report_path: Path, summary: str | None) -> bool:
    """Append the report to GitHub's job summary file (GITHUB_STEP_SUMMARY) when there is one."""
    if not summary:
        return False
    with open(summary, "a", encoding="utf-8") as handle:
        handle.write(report_path.read_text() + "\n")
    return True


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else ("-" if value is None else str(value))
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 160 else text[:157] + "..."
