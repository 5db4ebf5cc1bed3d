"""The shipped GMN checkpoint: golden predictions on seeded CNNs, no zoo needed (`zoo eval`: test_checkpoints.py)."""

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
