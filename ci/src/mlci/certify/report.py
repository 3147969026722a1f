"""The certification report: Markdown with tables and plots, for a PR comment and a job summary.

A reviewer scans it in seconds: per gate the verdict, the measured value against its bound in words and numbers,
and the change against the champion (summary.py renders them; the certificate keeps the raw values). The plots
are Mermaid charts, which GitHub draws in comments, job summaries and pull request bodies where a relative image
link would be broken; the same plots are written as PNG files beside the report, which the workflow uploads as
its run's artifact and the report links there.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files import write_atomic
from . import summary
from .summary import ICONS, cell, cell_lines, figure

MODEL_CARD = "model-card.md"


def _save(figure_: Any, out: Path, name: str, title: str) -> tuple[str, str]:
    import matplotlib.pyplot as plt

    png = io.BytesIO()
    # bbox_inches="tight" keeps a legend placed outside the axes inside the image.
    figure_.savefig(png, format="png", dpi=100, bbox_inches="tight")
    write_atomic(out / name, png.getvalue())
    plt.close(figure_)
    return title, name


def _shares(metrics: Mapping[str, float]) -> tuple[list[str], list[str]]:
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


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metrics_figure(metrics: Mapping[str, float], champion: Mapping[str, float] | None) -> Any:
    """Bars of the candidate's metrics (and the champion's beside them), shares and the others on their own axes;
    the legend right of the last axes, off the bars. None when there are no metrics."""
    groups = [group for group in _shares(metrics) if group]
    if not groups:
        return None
    figure_, panels = _pyplot().subplots(1, len(groups), figsize=(5 * len(groups), 3), squeeze=False)
    for axes, names in zip(panels[0], groups, strict=True):
        positions = range(len(names))
        axes.bar([p - 0.2 for p in positions], [metrics[n] for n in names], width=0.4, label="candidate")
        if champion:
            axes.bar([p + 0.2 for p in positions], [champion.get(n, 0.0) for n in names], width=0.4, label="champion")
        axes.set_xticks(list(positions), names)
    panels[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    figure_.suptitle("Held-out metrics")
    figure_.tight_layout()
    return figure_


def latency_figure(latencies_ms: list[float], slo_ms: float | None) -> Any:
    """The latency histogram on a log axis (the SLO is often far right of the bulk), with p50, p99 and the SLO
    marked and labelled in a legend right of the axes. None without latencies."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator

    if not latencies_ms:
        return None
    values = np.asarray(latencies_ms, dtype=float)
    low = max(float(values.min()), 1e-3)
    high = max(float(values.max()), low * 1.01)
    p50, p99 = (float(v) for v in np.percentile(values, [50, 99]))
    figure_, axes = _pyplot().subplots(figsize=(7, 3))
    axes.hist(np.clip(values, low, None), bins=np.geomspace(low, high, 40), color="#4c72b0")
    axes.set_xscale("log")
    marks = [(p50, f"p50 {figure(p50)} ms", "--", "#333333"), (p99, f"p99 {figure(p99)} ms", "-.", "#dd8452")]
    if slo_ms:
        marks.append((slo_ms, f"SLO: p99 ≤ {figure(slo_ms, 4)} ms", "-", "#c44e52"))
    for x, label, style, colour in marks:  # the SLO drawn under the measured lines: a p99 at the SLO stays seen
        axes.axvline(x, linestyle=style, color=colour, linewidth=1.5, label=label, zorder=2 if "SLO" in label else 3)
    axes.set_xlim(low / 1.3, max(high, slo_ms or 0.0) * 1.3)
    axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("requests")
    axes.set_title("Serving latency under load")
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    figure_.tight_layout()
    return figure_


def _plots(
    out: Path,
    metrics: Mapping[str, float],
    champion: Mapping[str, float] | None,
    latencies_ms: list[float],
    slo_ms: float | None,
    plots: Path | None,
) -> list[tuple[str, str]]:
    plt = _pyplot()
    made = []
    if (drawn := metrics_figure(metrics, champion)) is not None:
        made.append(_save(drawn, out, "metrics.png", "metrics against the champion"))
    if (drawn := latency_figure(latencies_ms, slo_ms)) is not None:
        made.append(_save(drawn, out, "latency.png", "serving latency with p50, p99 and the SLO"))
    roc = _points(plots, "roc.csv", {"fpr", "tpr"})
    if roc is not None:
        drawn, axes = plt.subplots(figsize=(4, 4))
        axes.plot(roc["fpr"], roc["tpr"])
        axes.plot([0, 1], [0, 1], linestyle=":")
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
        axes.set_title("ROC (held-out set)")
        drawn.tight_layout()
        made.append(_save(drawn, out, "roc.png", "ROC curve"))
    predicted = _points(plots, "predicted.csv", {"actual", "predicted"})
    if predicted is not None:
        drawn, axes = plt.subplots(figsize=(4, 4))
        axes.scatter(predicted["actual"], predicted["predicted"], s=6)
        bounds = [float(predicted.min().min()), float(predicted.max().max())]
        axes.plot(bounds, bounds, linestyle=":")
        axes.set_xlabel("actual")
        axes.set_ylabel("predicted")
        axes.set_title("Predicted against actual (held-out set)")
        drawn.tight_layout()
        made.append(_save(drawn, out, "predicted.png", "predicted against actual"))
    return made


def slo_ms(certificate: Mapping[str, Any]) -> float | None:
    """The serving gate's p99 bound, when the certificate has that gate."""
    for gate in certificate.get("gates", []):
        threshold = gate.get("threshold") if gate.get("gate") == "serving" else None
        if isinstance(threshold, Mapping) and isinstance(threshold.get("p99_ms"), int | float):
            return float(threshold["p99_ms"])
    return None


def gates_table(certificate: Mapping[str, Any], context: summary.Context, champion_column: bool = True) -> list[str]:
    """The gates as one table (the verdict, the measured values against their bounds, the change against the
    champion), then the reason of each gate that did not pass."""
    head = "| gate | verdict | measured against the bound |" + (" against the champion |" if champion_column else "")
    lines = [head, "| --- | --- | --- |" + (" --- |" if champion_column else "")]
    why = []
    for gate in certificate.get("gates", []):
        shown = summary.row(gate, context)
        line = f"| {shown.gate} | {shown.verdict} | {cell_lines(shown.measured)} |"
        lines.append(line + (f" {cell_lines(shown.champion)} |" if champion_column else ""))
        if gate.get("status") != "pass":
            why.append(f"- **{shown.gate}** ({shown.verdict}): {shown.reason.replace('<', '&lt;')}")
    return lines + (["", *why] if why else [])


def metrics_table(context: summary.Context) -> list[str]:
    """Every held-out metric: the candidate's, its bound, the champion's, and the change with its direction."""
    version = f" (version {context.champion_version})" if context.champion and context.champion_version else ""
    lines = [f"| metric | candidate | bound | champion{version} | change |", "| --- | --- | --- | --- | --- |"]
    for name in sorted(context.metrics):
        value = context.metrics[name]
        theirs = context.champion.get(name) if context.champion else None
        moved = "-" if theirs is None else summary.change(name, value, theirs, context.higher_is_better.get(name, True))
        bound = summary.bound_text(context.thresholds[name]) if name in context.thresholds else "-"
        lines.append(
            f"| {name} | {figure(value)} | {cell(bound)} | {'-' if theirs is None else figure(theirs)} | "
            f"{cell(moved.removeprefix(name + ' '))} |"
        )
    return lines


def _plot_links(plots: list[tuple[str, str]], certificate: Mapping[str, Any]) -> list[str]:
    """Where the PNG files are: uploaded with this report as the workflow run's artifact (linked, when the run is
    known), and beside the report on the machine that certified."""
    if not plots:
        return []
    run = certificate.get("run")
    url = run.get("url") if isinstance(run, Mapping) else None
    files = ", ".join(f"`{file}` ({title})" for title, file in plots)
    if url:
        return [f"Plots as PNG files: {files}, in the artifacts of [the certifying run]({url}#artifacts).", ""]
    return [f"Plots as PNG files beside this report (the workflow uploads them as its run's artifact): {files}.", ""]


def write(
    out: Path,
    certificate: Mapping[str, Any],
    context: summary.Context,
    latencies_ms: list[float],
    plots_dir: Path | None,
) -> Path:
    """report.md and its plots in `out` (with the project's DVC plots from `plots_dir`: ROC, or predicted against
    actual); the report's path."""
    slo = slo_ms(certificate)
    plots = _plots(out, context.metrics, context.champion, latencies_ms, slo, plots_dir)
    model = certificate["model"]
    lines = [
        f"## Certification of {model['name']} version {model['version']}: {ICONS[certificate['verdict']]}",
        "",
        f"Served artifact ({model['runtime']}) sha256 `{model['sha256']}`, commit `{certificate['git']['commit']}`.",
        "",
        *gates_table(certificate, context),
        "",
        *metrics_table(context),
        "",
    ]
    lines += _charts(context.metrics, context.champion, latencies_ms, slo, plots_dir)
    lines += _plot_links(plots, certificate)
    if (out / MODEL_CARD).is_file():
        lines += [f"The model card of this version, `{MODEL_CARD}`, is beside this report.", ""]
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
    metrics: Mapping[str, float],
    champion: Mapping[str, float] | None,
    latencies_ms: list[float],
    slo: float | None,
    plots: Path | None,
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
        p50, p99 = (float(v) for v in np.percentile(np.asarray(latencies_ms), [50, 99]))
        marks = f"p50 {figure(p50)} ms, p99 {figure(p99)} ms" + (f", SLO p99 ≤ {figure(slo, 4)} ms" if slo else "")
        lines += _chart(
            f"Serving latency under load (requests per bin, ms; {marks})",
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


def append_to_job_summary(report_path: Path, summary_file: str | None) -> bool:
    """Append the report to GitHub's job summary file (GITHUB_STEP_SUMMARY) when there is one."""
    if not summary_file:
        return False
    with open(summary_file, "a", encoding="utf-8") as handle:
        handle.write(report_path.read_text() + "\n")
    return True
