"""The certification report: a gates table a reviewer scans in seconds, Mermaid charts GitHub can draw, PNG files
with their marks, the job summary."""

from __future__ import annotations

import re

import pytest
import sample_certification as sample

from mlci.certify import config, report, summary
from mlci.certify.gates import champion, quality, serving

LATENCIES = [1.0 + (i % 17) / 10 for i in range(500)]


def write(tmp_path, with_champion=True, faults=False):
    """report.md of the sample certification, with a ROC plot and latencies."""
    plots = tmp_path / "plots"
    plots.mkdir(exist_ok=True)
    (plots / "roc.csv").write_text("fpr,tpr,threshold\n0,0,1\n0.1,0.8,0.7\n0.5,0.95,0.3\n1,1,0\n")
    document = sample.document(sample.gates(faults=faults, with_champion=with_champion))
    context = sample.context(with_champion=with_champion, faults=faults)
    return report.write(tmp_path, document, context, LATENCIES, plots)


@pytest.fixture(scope="module")
def passed(tmp_path_factory):
    """The report of a certification that passed, against a champion: (its text, its folder)."""
    folder = tmp_path_factory.mktemp("passed")
    return write(folder).read_text(), folder


def cells(text, gate):
    """The cells of `gate`'s row of the gates table."""
    line = next(line for line in text.splitlines() if line.startswith(f"| {gate} |"))
    return [part.strip() for part in re.split(r"(?<!\\)\|", line)[1:-1]]


def test_each_gate_reads_as_its_value_against_its_bound_with_the_change_against_the_champion(passed):
    text = passed[0]
    contract = "the data contract (≥ 100 rows, 3 feature columns and the target) holds"
    assert cells(text, "data") == ["data", "✅ pass", f"455 rows, 4 columns, 14 checks passed<br>{contract}", "-"]
    assert cells(text, "quality")[2:] == [
        "accuracy 0.956 ≥ 0.9<br>roc_auc 0.991 ≥ 0.95<br>log_loss 0.123 ≤ 0.5",
        "accuracy +0.0088 ▲ better<br>roc_auc -0.0022 ▼ worse<br>log_loss -0.0067 ▼ better",
    ]
    assert cells(text, "champion")[2:] == [
        "accuracy 0.956 vs 0.947: not worse (tolerance 0.01)<br>"
        "roc_auc 0.991 vs 0.993: 0.0022 worse, within the tolerance 0.01",
        "champion: version 3",
    ]
    assert cells(text, "serving")[2] == "p99 1.24 ms ≤ 50 ms at 200 req/s<br>saturates at 14,089 req/s ≥ 200 req/s"
    assert cells(text, "robustness")[2] == "3 of 3 bad requests got a 4xx (bound: every one)<br>the server stayed up"
    assert cells(text, "parity")[2] == "largest difference 3.2e-07 ≤ 1e-05 over 114 rows"
    assert cells(text, "reproducibility")[2] == "dvc status clean (bound: clean)<br>dvc.lock committed"
    assert "| accuracy | 0.956 | ≥ 0.9 | 0.947 | +0.0088 ▲ better |" in text
    assert "python -m" not in text and "{'" not in text and "'champion'" not in text


def test_failed_gates_say_which_bound_they_broke_and_why(tmp_path):
    text = write(tmp_path, faults=True).read_text()
    assert "the data contract (≥ 100 rows, 3 feature columns and the target) fails" in cells(text, "data")[2]
    assert cells(text, "quality")[2].startswith("accuracy 0.851, needs ≥ 0.9<br>")
    assert "accuracy 0.851 vs 0.947: 0.096 worse, beyond the tolerance 0.01" in cells(text, "champion")[2]
    assert cells(text, "serving")[2] == (
        "p99 313 ms > 50 ms at 200 req/s: over its bound<br>saturates at 180 req/s &lt; 200 req/s, under its bound<br>"
        "3 failed requests, bound 0"
    )
    assert cells(text, "robustness")[2].startswith(
        "2 of 3 bad requests got a 4xx (bound: every one); not: invalid JSON"
    )
    assert cells(text, "parity")[1:3] == ["⚠️ error", "could not run (the reason below says why)"]
    # Each gate that did not pass has its reason under the table, in one line, bounds as ≥.
    assert "- **quality** (❌ fail): accuracy 0.8512 (needs ≥ 0.9)" in text
    assert "- **data** (❌ fail): null share on column mean radius: 455 unexpected values (100%)" in text
    assert "- **parity** (⚠️ error): RuntimeError: the ONNX session could not load" in text
    assert "- **reproducibility**" not in text


def test_without_a_champion_the_champion_gate_names_its_tolerance_and_the_chart_has_no_line(tmp_path):
    text = write(tmp_path, with_champion=False).read_text()
    assert cells(text, "champion")[2:] == ["no champion yet: nothing to beat (tolerance accuracy 0.01, roc_auc 0.01)",
                                           "no champion yet"]  # fmt: skip
    assert cells(text, "quality")[3] == "no champion yet"
    assert "| accuracy | 0.956 | ≥ 0.9 | - | - |" in text
    first = re.search(r"```mermaid\n(.*?)```", text, flags=re.S).group(1)
    assert "line" not in first


def test_a_regression_reads_lower_is_better_metrics_the_right_way_round():
    bounds = {"r2": config.Bound(min=0.3), "rmse": config.Bound(max=65.0)}
    metrics, theirs = {"r2": 0.4213456789, "rmse": 55.23456}, {"r2": 0.45, "rmse": 57.0}
    higher = {"r2": True, "rmse": False}
    context = summary.Context(metrics, {n: quality.bound_text(b) for n, b in bounds.items()}, theirs, "7", higher)
    gate = quality.verdict(metrics, bounds).to_dict()
    shown = summary.row(gate, context)
    assert shown.measured == ["r2 0.421 ≥ 0.3", "rmse 55.2 ≤ 65"]
    assert shown.champion == ["r2 -0.029 ▼ worse", "rmse -1.8 ▼ better"]
    tolerance = {"r2": 0.02, "rmse": 1.0}
    fought = summary.row(champion.verdict(metrics, theirs, tolerance, higher, "champion").to_dict(), context)
    assert fought.measured == [
        "r2 0.421 vs 0.45: 0.029 worse, beyond the tolerance 0.02",
        "rmse 55.2 vs 57: not worse (tolerance 1)",
    ]
    bounded = summary.row(quality.verdict({"r2": 0.5}, {"r2": config.Bound(min=0.0, max=1.0)}).to_dict(), context)
    assert bounded.measured == ["0 ≤ r2 0.5 ≤ 1"]
    broken = summary.row(quality.verdict({"rmse": 70.123}, {"rmse": bounds["rmse"]}).to_dict(), context)
    assert broken.measured == ["rmse 70.1, needs ≤ 65"]


def test_a_serving_gate_without_a_throughput_bound_says_so():
    gate = serving.verdict(serving.Measured(700.0, 700.0, 2.5, 0, 1400.0, 3.0), 50, 0).to_dict()
    assert summary.row(gate, summary.Context()).measured == [
        "p99 2.5 ms ≤ 50 ms at 700 req/s",
        "saturates at 1,400 req/s (no throughput bound)",
    ]


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.956140350877193, "0.956"), (14089.4321, "14,089"), (999.7, "1,000"), (1.23456789, "1.23"), (0.0, "0"),
     (3.2109876e-07, "3.21e-07"), (312, "312"), (14089, "14,089"), (float("inf"), "∞")],
)  # fmt: skip
def test_numbers_are_shown_at_three_significant_digits(value, shown):
    assert summary.figure(value) == shown


def test_free_text_loses_its_long_floats_but_keeps_versions_and_addresses():
    text = "max diff 0.000123456789 at 127.0.0.1 with mlci 3.10.1, p99 2.50 ms, share 100.00%"
    assert summary.tidy(text) == "max diff 0.000123 at 127.0.0.1 with mlci 3.10.1, p99 2.50 ms, share 100%"
    assert (
        summary.plain({"candidate": {"accuracy": 0.956140350877193}, "ok": True}) == "candidate accuracy 0.956, ok yes"
    )


def test_the_report_has_a_mermaid_chart_per_plot_and_links_the_png_files_in_the_run_artifact(passed):
    text, folder = passed
    blocks = re.findall(r"```mermaid\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3 and all(b.startswith("xychart-beta\n") for b in blocks)
    metrics_chart, latency_chart, roc_chart = blocks
    assert (
        'x-axis ["accuracy", "log_loss", "roc_auc"]' in metrics_chart
        and "bar [0.9561, 0.1235, 0.9911]" in metrics_chart
    )
    assert "line [0.9474, 0.1301, 0.9933]" in metrics_chart
    assert sum(float(v) for v in re.search(r"bar \[(.*)\]", latency_chart).group(1).split(", ")) == 500
    assert "p50 1.8 ms, p99 2.6 ms, SLO p99 ≤ 50 ms" in latency_chart
    tpr = [float(v) for v in re.search(r"line \[(.*?)\]", roc_chart).group(1).split(", ")]
    assert len(tpr) == 21 and tpr[0] == 0 and tpr[-1] == 1 and tpr == sorted(tpr)
    # Links go to the run's artifacts: a relative image link would show broken in a PR comment.
    assert re.findall(r"\]\(([^)]*)\)", text) == ["https://github.com/acme/tumor/actions/runs/42#artifacts"]
    assert "`metrics.png` (metrics against the champion), `latency.png`" in text
    assert all((folder / name).is_file() for name in ("metrics.png", "latency.png", "roc.png"))


def test_the_metrics_legend_sits_off_the_bars_and_the_latency_histogram_marks_p50_p99_and_the_slo():
    figure = report.metrics_figure(sample.METRICS | {"rmse": 55.0}, sample.CHAMPION)
    figure.canvas.draw()
    legend = figure.axes[-1].get_legend().get_window_extent()
    assert not any(legend.overlaps(axes.get_window_extent()) for axes in figure.axes)
    figure = report.latency_figure(LATENCIES, 50.0)
    figure.canvas.draw()
    axes = figure.axes[0]
    marks = {line.get_label(): line.get_xdata()[0] for line in axes.get_lines()}
    assert marks == {"p50 1.8 ms": pytest.approx(1.8), "p99 2.6 ms": pytest.approx(2.6), "SLO: p99 ≤ 50 ms": 50.0}
    assert axes.get_xlim()[1] > 50 and not axes.get_legend().get_window_extent().overlaps(axes.get_window_extent())


def test_the_report_goes_to_the_job_summary_only_when_github_names_one(passed, tmp_path):
    path = passed[1] / "report.md"
    summary_file = tmp_path / "summary.md"
    summary_file.write_text("earlier step\n")
    assert report.append_to_job_summary(path, str(summary_file))
    assert summary_file.read_text() == "earlier step\n" + path.read_text() + "\n"
    assert not report.append_to_job_summary(path, None) and not report.append_to_job_summary(path, "")


def test_a_regression_report_draws_metrics_in_their_units_apart_and_predicted_against_actual(tmp_path):
    plots = tmp_path / "plots"
    plots.mkdir()
    actual = [25.0 + 3 * i for i in range(100)]
    rows = "\n".join(f"{a},{a * 0.8 + 20:.2f}" for a in actual)
    (plots / "predicted.csv").write_text("actual,predicted\n" + rows + "\n")
    metrics = {"rmse": 55.2, "mae": 44.1, "r2": 0.42}
    context = summary.Context(metrics, {"r2": ">= 0.3"}, {"rmse": 57.0, "mae": 45.0, "r2": 0.4}, "2")
    text = report.write(tmp_path, sample.document(sample.gates()), context, [], plots).read_text()
    shares, units, predicted = re.findall(r"```mermaid\n(.*?)```", text, flags=re.S)
    assert 'x-axis ["r2"]' in shares and '"value" 0 --> 1' in shares
    assert 'x-axis ["mae", "rmse"]' in units and "bar [44.1, 55.2]" in units and "line [45, 57]" in units
    top = float(re.search(r'"value" [0-9.]+ --> ([0-9.]+)', units).group(1))
    assert top > 57  # the axis holds the largest value, not 0-1
    means = [float(v) for v in re.search(r"line \[(.*?)\]", predicted).group(1).split(", ")]
    assert len(means) == 10 and means == sorted(means)
    assert (tmp_path / "predicted.png").is_file() and not (tmp_path / "roc.png").exists()
