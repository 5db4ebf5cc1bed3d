"""The shipped TextSSL checkpoints: golden raw-text predictions and (slow) `zoo eval` reproducing the card."""

import json
from pathlib import Path

import pytest

pytest.importorskip("torch_geometric")

import zoo  # noqa: E402
from zoo.hub import cards_dir  # noqa: E402

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


@pytest.mark.slow
@pytest.mark.parametrize("model_id", IDS)
def test_zoo_eval_reproduces_the_card(model_id, capsys):
    from huggingface_hub import ModelCard

    from zoo.cli import main

    assert main(["eval", model_id, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = ModelCard.load(cards_dir() / model_id / "README.md")
    assert abs(100 * metrics["accuracy"] - card.data.eval_results[0].metric_value) <= 0.3
