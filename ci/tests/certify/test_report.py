"""The certification report: tables, Mermaid charts GitHub can draw, PNG files, the job summary."""

from __future__ import annotations

import re

from mlci.certify import report

CERTIFICATE = {
    "verdict": "fail",
    "model": {"name": "tumor-classifier", "version": "3", "runtime": "onnx", "sha256": "ab" * 32},
    "git": {"commit": "0" * 40},
    "gates": [
        {"gate": "quality", "status": "fail", "measured": "accuracy=0.91", "threshold": ">= 0.95", "reason": "a|b"},
        {"gate": "serving", "status": "pass", "measured": "p99 2.1 ms", "threshold": "<= 50 ms", "reason": "ok"},
    ],
}


def write(tmp_path, champion=None):
    plots = tmp_path / "plots"
    plots.mkdir(exist_ok=True)
    (plots / "roc.csv").write_text("fpr,tpr,threshold\n0,0,1\n0.1,0.8,0.7\n0.5,0.95,0.3\n1,1,0\n")
    latencies = [1.0 + (i % 17) / 10 for i in range(500)]
    metrics = {"accuracy": 0.91, "roc_auc": 0.97}
    return report.write(tmp_path, CERTIFICATE, metrics, {"accuracy": ">= 0.95"}, champion, latencies, plots)


def test_the_report_has_the_tables_and_a_mermaid_chart_per_plot(tmp_path):
    text = write(tmp_path, champion={"accuracy": 0.93, "roc_auc": 0.96}).read_text()
    assert "| quality | ❌ fail | accuracy=0.91 | >= 0.95 | a\\|b |" in text
    assert "| accuracy | 0.9100 | >= 0.95 | 0.9300 |" in text
    blocks = re.findall(r"```mermaid\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3 and all(b.startswith("xychart-beta\n") for b in blocks)
    metrics_chart, latency_chart, roc_chart = blocks
    assert 'x-axis ["accuracy", "roc_auc"]' in metrics_chart and "bar [0.91, 0.97]" in metrics_chart
    assert "line [0.93, 0.96]" in metrics_chart
    assert sum(float(v) for v in re.search(r"bar \[(.*)\]", latency_chart).group(1).split(", ")) == 500
    tpr = [float(v) for v in re.search(r"line \[(.*?)\]", roc_chart).group(1).split(", ")]
    assert len(tpr) == 21 and tpr[0] == 0 and tpr[-1] == 1 and tpr == sorted(tpr)
    assert "](" not in text  # no relative image links, which a PR comment would show broken
    assert all((tmp_path / name).is_file() for name in ("metrics.png", "latency.png", "roc.png"))


def test_without_a_champion_the_metrics_chart_has_no_line(tmp_path):
    text = write(tmp_path).read_text()
    first = re.search(r"```mermaid\n(.*?)```", text, flags=re.S).group(1)
    assert "line" not in first and "| accuracy | 0.9100 | >= 0.95 | - |" in text


def test_the_report_goes_to_the_job_summary_only_when_github_names_one(tmp_path):
    path = write(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    assert report.append_to_job_summary(path, str(summary))
    assert summary.read_text() == "earlier step\n" + path.read_text() + "\n"
    assert not report.append_to_job_summary(path, None) and not report.append_to_job_summary(path, "")


def test_a_regression_report_draws_metrics_in_their_units_apart_and_predicted_against_actual(tmp_path):
    plots = tmp_path / "plots"
    plots.mkdir()
    actual = [25.0 + 3 * i for i in range(100)]
    rows = "\n".join(f"{a},{a * 0.8 + 20:.2f}" for a in actual)
    (plots / "predicted.csv").write_text("actual,predicted\n" + rows + "\n")
    metrics = {"rmse": 55.2, "mae": 44.1, "r2": 0.42}
    text = report.write(tmp_path, CERTIFICATE, metrics, {"r2": ">= 0.3"}, {"rmse": 57.0, "mae": 45.0, "r2": 0.4}, [],
                        plots).read_text()  # fmt: skip
    shares, units, predicted = re.findall(r"```mermaid\n(.*?)```", text, flags=re.S)
    assert 'x-axis ["r2"]' in shares and '"value" 0 --> 1' in shares
    assert 'x-axis ["mae", "rmse"]' in units and "bar [44.1, 55.2]" in units and "line [45, 57]" in units
    top = float(re.search(r'"value" [0-9.]+ --> ([0-9.]+)', units).group(1))
    assert top > 57  # the axis holds the largest value, not 0-1
    means = [float(v) for v in re.search(r"line \[(.*?)\]", predicted).group(1).split(", ")]
    assert len(means) == 10 and means == sorted(means)
    assert (tmp_path / "predicted.png").is_file() and not (tmp_path / "roc.png").exists()
