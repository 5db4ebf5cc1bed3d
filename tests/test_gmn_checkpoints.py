"""The shipped GMN checkpoint: golden predictions on seeded CNNs (no zoo needed) and (slow) `zoo eval`."""

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_geometric")
from torch_geometric.data import Batch  # noqa: E402

import zoo  # noqa: E402
from zoo.gmn import to_graph  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
IDS = zoo.list_models("gmn-*")
sys.path.insert(0, str(REPO / "scripts"))


@pytest.mark.parametrize("model_id", IDS)
def test_predictions_on_seeded_cnns_match_golden(model_id):
    from gmn_pipeline import golden_nets

    golden = json.loads((REPO / "tests" / "golden" / f"{model_id}.json").read_text())
    model = zoo.from_pretrained(model_id)
    with torch.no_grad():
        pred = torch.sigmoid(model(Batch.from_data_list([to_graph(n) for n in golden_nets()])))
    torch.testing.assert_close(pred, torch.tensor(golden["predicted_accuracy"]), rtol=0, atol=1e-5)
    assert ((pred > 0) & (pred < 1)).all()


@pytest.mark.slow
@pytest.mark.parametrize("model_id", IDS)
def test_zoo_eval_reproduces_the_card(model_id, capsys, monkeypatch):
    from huggingface_hub import ModelCard

    # the network zoo is generated (scripts/gmn_zoo.py) into the user's cache, which conftest replaces by a temp dir
    cache = Path.home() / ".cache" / "zoo" / "derived"
    if not (cache / "gmn_zoo").exists():
        pytest.skip("needs the network zoo: python scripts/gmn_zoo.py --nets 2000")
    monkeypatch.setenv("ZOO_CACHE", str(cache))

    from zoo.cli import main
    from zoo.hub import cards_dir

    assert main(["eval", model_id, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = ModelCard.load(cards_dir() / model_id / "README.md")
    assert abs(100 * metrics["r2"] - card.data.eval_results[0].metric_value) <= 0.5
