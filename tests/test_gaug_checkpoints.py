"""The shipped GAug checkpoints: golden outputs, registry hashes, cards agreeing with the measured results and the
recipes (`zoo eval` of every checkpoint: tests/test_checkpoints.py)."""

from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_geometric")

import zoo  # noqa: E402
from zoo import registry  # noqa: E402
from zoo.hub import WEIGHTS, cards_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
IDS = [i for i in zoo.list_models("gaug-*") if (cards_dir() / i / WEIGHTS).exists()]
pytestmark = pytest.mark.skipif(not IDS, reason="no GAug checkpoint shipped yet (scripts/gaug_pipeline.py ship)")


def _graph(model_id):
    from zoo.data.gaug import GraphDataModule

    dm = GraphDataModule(**registry.get_entry(model_id).data)
    dm.setup()
    return dm.graph


@pytest.mark.parametrize("model_id", IDS)
def test_loaded_checkpoint_reproduces_golden_outputs(model_id):
    from safetensors.torch import load_file

    golden = load_file(REPO / "tests" / "golden" / f"{model_id}.safetensors")
    g = _graph(model_id)
    model = zoo.from_pretrained(model_id)
    assert not model.training
    with torch.no_grad():
        logits = model(g.x, g.edge_index)[golden["index"]]
    torch.testing.assert_close(logits, golden["logits"], rtol=1e-4, atol=1e-4)
