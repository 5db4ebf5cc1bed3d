"""The shipped TextSSL checkpoints: golden raw-text predictions (`zoo eval`: tests/test_checkpoints.py)."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch_geometric")

import zoo  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
IDS = zoo.list_models("textssl-*")


@pytest.mark.parametrize("model_id", IDS)
def test_raw_text_predictions_match_golden(model_id):
    golden = json.loads((REPO / "tests" / "golden" / f"{model_id}.json").read_text())
    model = zoo.from_pretrained(model_id)
    preds = model.predict_text(golden["texts"])
    assert [p["label"] for p in preds] == [g["label"] for g in golden["predictions"]]
    for p, g in zip(preds, golden["predictions"]):
        assert p["probabilities"] == pytest.approx(g["probabilities"], abs=1e-5)
    assert model.vocab[0] == "<unk>" and len(model.labels) == model.net_config.num_classes
