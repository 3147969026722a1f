"""The model card: what the pipeline knows of a version, then the team's own sections as they are written."""

from __future__ import annotations

import pytest
import sample_certification as sample

from mlci.certify import config, model_card
from mlci.certify import run as certify
from mlci.errors import MlciError

TEAM = (
    "## Intended use\n\nScreening support for radiologists; never a diagnosis on its own.\n\n## Owners\n\nImaging ML\n"
)
CONFIG = """
model_card: {card}
gates:
  data: {{command: "true"}}
  quality: {{thresholds: {{accuracy: {{min: 0.9}}}}}}
  champion: {{tolerance: {{accuracy: 0.01}}}}
  serving: {{p99_ms: 50, min_requests_per_s: 10}}
"""


def card(tmp_path, with_champion=True):
    document = sample.document(sample.gates(with_champion=with_champion))
    context = sample.context(with_champion=with_champion)
    return model_card.write(tmp_path, document, sample.served(tmp_path), context, TEAM, "model-card.md").read_text()


def test_the_card_holds_model_parameters_data_metrics_gates_serving_and_signature(tmp_path):
    text = card(tmp_path)
    assert text.startswith("# Model card: tumor-classifier version 4\n")
    assert (
        "| framework | sklearn (MLflow flavor) |" in text
        and "| served by | onnx runtime, artifact `model.onnx` |" in text
    )
    assert "| n_estimators | 100 |" in text and "| seed | 42 |" in text
    assert "Data version `0123456789ab`, in the repository since 2026-11-30T12:00:00+00:00." in text
    assert "| data/prepared/train.parquet | `" + "2" * 32 + "` |" in text
    assert "at least 100 rows; the label: one of 0, 1, each class at least 20% of the rows" in text
    assert "| mean radius | number | 0 to 57 | 0% |" in text and "| colour | category | a, b | 0% |" in text
    assert "| accuracy | 0.956 | ≥ 0.9 | 0.947 | +0.0088 ▲ better |" in text  # with the champion's
    assert "| quality | ✅ pass | accuracy 0.956 ≥ 0.9<br>" in text
    assert "| p99 latency | 1.24 ms at 200 req/s offered | ≤ 50 ms |" in text
    assert "| saturation | 14,089 req/s, p99 3.21 ms | ≥ 200 req/s |" in text
    assert "| colour | string | no |" in text and "Output: probabilities `probabilities`, classes 0, 1." in text
    assert "{'" not in text and "python -m" not in text


def test_the_team_sections_come_last_as_written(tmp_path):
    text = card(tmp_path, with_champion=False)
    assert text.endswith("*The sections below are the team's, from `model-card.md`.*\n\n" + TEAM.strip() + "\n")
    assert "| accuracy | 0.956 | ≥ 0.9 | - | - |" in text
    document = sample.document(sample.gates())
    bare = model_card.render(document, sample.served(tmp_path), sample.context(), None, None)
    assert "No team-written sections: name the file that holds them in certification.yaml (`model_card`)." in bare


def test_a_missing_team_file_stops_certify_before_any_gate_runs(tmp_path):
    (tmp_path / "certification.yaml").write_text(CONFIG.format(card="docs/model-card.md"))
    out = tmp_path / "reports"
    with pytest.raises(MlciError, match=r"certification.yaml: model_card: .*docs/model-card.md is unreadable"):
        certify.certify(tmp_path / "certification.yaml", out, tmp_path, log=print)
    assert not out.exists()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "model-card.md").write_text(TEAM)
    settings = config.load(tmp_path / "certification.yaml")
    assert certify._team_sections(settings, tmp_path / "certification.yaml", tmp_path) == TEAM


def test_an_empty_model_card_key_is_refused_by_name(tmp_path):
    (tmp_path / "certification.yaml").write_text(CONFIG.format(card='""'))
    with pytest.raises(MlciError, match="certification.yaml: model_card: String should have at least 1 character"):
        config.load(tmp_path / "certification.yaml")
