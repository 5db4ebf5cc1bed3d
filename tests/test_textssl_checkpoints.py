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


@pytest.mark.parametrize("model_id", IDS)
def test_card_states_the_recipe_epochs_and_the_multi_sentence_share(model_id):
    from zoo.methods import recipe_config
    from zoo.methods.textssl import EXAMPLE_TEXTS, PAPER_EPOCHS, card_sections
    from zoo.registry import get_entry

    entry = get_entry(model_id)
    epochs = recipe_config(entry)["trainer"]["max_epochs"]
    _, sections = card_sections(entry)
    fewer = f"Fewer epochs than the paper's {PAPER_EPOCHS} ({epochs}:"
    assert (fewer in sections["limitations"]) == (epochs < PAPER_EPOCHS)
    assert (f"The paper's {PAPER_EPOCHS} epochs" in sections["limitations"]) == (epochs >= PAPER_EPOCHS)
    assert repr(EXAMPLE_TEXTS.get(entry.dataset, EXAMPLE_TEXTS["r8"])) in sections["start"]
    throughput = json.loads((REPO / "results" / "textssl" / "throughput.json").read_text())
    share = throughput[f"{entry.dataset}/multi_sentence_share"]
    assert 0 < share <= 1 and f"{100 * share:.1f}% of" in sections["training"]
