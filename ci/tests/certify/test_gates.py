"""The gates' verdicts (pure) and certification.yaml's validation."""

from pathlib import Path

import pytest

from mlci.certify import config
from mlci.certify.certificate import verdict as overall
from mlci.certify.gates import champion, data, parity, quality, reproducibility, robustness, serving
from mlci.errors import MlciError
from mlci.packaging.parity import ParityResult

BOUNDS = {"accuracy": config.Bound(min=0.9), "log_loss": config.Bound(max=0.3)}


def test_quality_passes_within_bounds_and_names_each_broken_metric():
    assert quality.verdict({"accuracy": 0.95, "log_loss": 0.1}, BOUNDS).status == "pass"
    failed = quality.verdict({"accuracy": 0.85, "log_loss": 0.4}, BOUNDS)
    assert failed.status == "fail"
    assert "accuracy 0.85 (needs >= 0.9)" in failed.reason and "log_loss 0.4 (needs <= 0.3)" in failed.reason
    assert quality.verdict({"accuracy": 0.95}, BOUNDS).status == "error"


def test_champion_passes_without_a_champion_and_fails_beyond_the_tolerance():
    candidate = {"accuracy": 0.93, "log_loss": 0.20}
    higher = {"accuracy": True, "log_loss": False}
    tolerance = {"accuracy": 0.01, "log_loss": 0.05}
    first = champion.verdict(candidate, None, tolerance, higher, "champion")
    assert first.status == "pass" and "no 'champion' yet" in first.reason
    assert champion.verdict(candidate, {"accuracy": 0.935, "log_loss": 0.18}, tolerance, higher, "c").status == "pass"
    worse = champion.verdict(candidate, {"accuracy": 0.96, "log_loss": 0.10}, tolerance, higher, "c")
    assert worse.status == "fail" and "accuracy 0.93 vs 0.96" in worse.reason and "log_loss 0.2 vs 0.1" in worse.reason


def test_serving_fails_on_latency_at_the_offered_rate_saturation_or_errors():
    def seen(p99: float = 4.0, saturation: float = 1000, errors: int = 0, late: float = 0.0) -> serving.Measured:
        return serving.Measured(500, 500, p99, errors, saturation, 2.0, late)

    passed = serving.verdict(seen(), slo_p99_ms=5, slo_rps=500)
    assert passed.status == "pass" and "p99 4.00 ms at 500 requests/s offered (open loop)" in passed.reason
    assert "saturates at 1000 requests/s" in passed.reason
    assert "p99 6.00 ms > 5 ms at 500 requests/s offered" in serving.verdict(seen(p99=6.0), 5, 500).reason
    assert "saturates at 400 requests/s < 500" in serving.verdict(seen(saturation=400), 5, 500).reason
    assert "3 request(s) failed" in serving.verdict(seen(errors=3), 5, 500).reason
    late = serving.verdict(seen(p99=60.0, late=40.0), 5, 500)
    assert "the load generator fell 40 ms behind its schedule" in late.reason


def test_robustness_needs_every_case_4xx_and_the_server_alive():
    assert robustness.verdict({"a": 400, "b": 413}, True).status == "pass"
    assert "b: 500" in robustness.verdict({"a": 400, "b": 500}, True).reason
    assert "died" in robustness.verdict({"a": 400}, False).reason


def test_parity_reproducibility_and_data_verdicts():
    assert parity.verdict(ParityResult(10, 1e-7, 1e-5, "ok")).status == "pass"
    assert parity.verdict(ParityResult(10, 1e-3, 1e-5, "max |diff|")).status == "fail"
    assert reproducibility.verdict("Data and pipelines are up to date.", True).status == "pass"
    assert reproducibility.verdict("train:\n\tchanged deps", True).status == "fail"
    assert reproducibility.verdict("", False).status == "fail"
    assert data.verdict("check", 0, "holds").status == "pass"
    assert data.verdict("check", 1, "x\n2 expectation(s) failed").reason == "2 expectation(s) failed"
    assert data.verdict("check", 127, "not found").status == "error"


def test_the_overall_verdict_is_the_worst_gate():
    results = [quality.verdict({"accuracy": 0.95, "log_loss": 0.1}, BOUNDS)]
    assert overall(results) == "pass"
    assert overall([*results, quality.verdict({"accuracy": 0.5, "log_loss": 0.1}, BOUNDS)]) == "fail"
    assert overall([*results, quality.verdict({}, BOUNDS)]) == "error"


GOOD = """
gates:
  data: {command: "true"}
  quality: {thresholds: {accuracy: {min: 0.9}}}
  champion: {tolerance: {accuracy: 0.01}}
  serving: {p99_ms: 50, min_requests_per_s: 100}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("p99_ms: 50", "p99_ms: -1"), "gates.serving.p99_ms: Input should be greater than 0"),
        (GOOD.replace("{min: 0.9}", "{}"), "gates.quality.thresholds.accuracy: Value error, give min, max or both"),
        (GOOD.replace("serving:", "servng:"), "gates.servng: unknown key; allowed: data, quality, champion"),
        (GOOD.replace('{command: "true"}', '{command: "true", colour: red}'), "gates.data.colour: unknown key"),
        (GOOD + "  parity: {tolerance: lots}\n", "gates.parity.tolerance: Input should be a valid number"),
        ("gates: [", "not valid YAML"),
    ],
)
def test_a_bad_certification_yaml_names_the_file_and_the_key(tmp_path: Path, text, message):
    path = tmp_path / "certification.yaml"
    path.write_text(text)
    with pytest.raises(MlciError) as caught:
        config.load(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_the_good_config_loads_with_defaults(tmp_path: Path):
    path = tmp_path / "certification.yaml"
    path.write_text(GOOD)
    loaded = config.load(path)
    assert loaded.gates.parity.tolerance == 1e-5 and loaded.gates.robustness.enabled


def test_a_metric_bounded_from_above_or_named_a_loss_is_better_lower():
    from mlci.certify.run import higher_is_better

    assert higher_is_better("accuracy", BOUNDS) and not higher_is_better("log_loss", BOUNDS)
    assert not higher_is_better("val_loss", {}) and not higher_is_better("rmse", {})
    assert higher_is_better("roc_auc", {})


def test_the_champion_gate_takes_each_metric_s_direction_as_written():
    from mlci.certify.config import ChampionGate
    from mlci.certify.run import directions

    # "miss_share" reads as higher-is-better by its name; written down as lower-is-better, that is what counts.
    gate = ChampionGate(tolerance={"miss_share": 0.05, "accuracy": 0.01}, greater_is_better={"miss_share": False})
    assert directions(gate, {}) == {"miss_share": False, "accuracy": True}
    worse = champion.verdict({"miss_share": 0.30, "accuracy": 0.9}, {"miss_share": 0.10, "accuracy": 0.9},
                             gate.tolerance, directions(gate, {}), "champion")  # fmt: skip
    assert worse.status == "fail"
    with pytest.raises(ValueError, match="greater_is_better names 'rmse', which has no tolerance"):
        ChampionGate(tolerance={"r2": 0.01}, greater_is_better={"rmse": False})
