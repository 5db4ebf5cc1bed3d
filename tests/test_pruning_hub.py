"""Pruned zoo checkpoints: saved in the compact TVW format with their layout in config.json, loaded straight into
TVW layers."""

import json

import pytest
import torch

import zoo
from zoo.hub import CheckpointError, pack_pruned
from zoo.pruning import prune_, sparsity_report
from zoo.pruning.tvw import TVWLinear


@pytest.fixture
def pruned_conn(tiny_conn):
    prune_(tiny_conn.net, "tvw", 0.75, tile=16, targets=[r"classifier\.net\.[02]$"])
    return tiny_conn


def test_pruned_checkpoint_round_trip_loads_into_tvw_layers(pruned_conn, tmp_path):
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        expected = pruned_conn.eval()(x)
    record = pack_pruned(pruned_conn)
    assert set(record["layers"]) == {"classifier.net.0", "classifier.net.2"}
    pruned_conn.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["sparsity"]["layers"]["classifier.net.0"]["layout"]["nm"] == [2, 4]
    loaded = zoo.from_pretrained(tmp_path)
    assert isinstance(loaded.net.classifier.net[0], TVWLinear)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=1e-5, atol=1e-5)
    dense = loaded.net.classifier.net[0].weight_nk()
    assert float((dense != 0).float().mean()) <= 0.5  # 2:4 inside the kept tiles
    loaded.save_pretrained(tmp_path / "again")  # a loaded pruned checkpoint saves and loads again
    again = zoo.from_pretrained(tmp_path / "again")
    with torch.no_grad():
        torch.testing.assert_close(again(x), expected, rtol=1e-5, atol=1e-5)


def test_a_layout_that_does_not_fit_the_architecture_is_refused(pruned_conn, tmp_path):
    pack_pruned(pruned_conn)
    pruned_conn.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["sparsity"]["layers"]["classifier.net.0"]["layout"]["in_features"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="sparsity layout"):
        zoo.from_pretrained(tmp_path)


def test_unpruned_models_have_no_sparsity_record(tiny_conn, tmp_path):
    assert pack_pruned(tiny_conn) is None
    tiny_conn.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["sparsity"] is None
    assert sparsity_report(zoo.from_pretrained(tmp_path).net).density == 1.0
