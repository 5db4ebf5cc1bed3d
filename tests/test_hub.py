"""Checkpoints as Hub repositories: save/load round trips, a real push and pull through a local Hub server,
strict and atomic loading, and cards."""

import json
import shutil

import pytest
import torch
from huggingface_hub import ModelCard

import zoo
from zoo.hub import CARD, CONFIG, WEIGHTS, CheckpointError, from_pretrained


def _outputs(module, x):
    with torch.no_grad():
        return module(x)


def test_save_and_load_local_dir_is_bit_exact(tiny_conn, digits, tmp_path):
    tiny_conn.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [CARD, CONFIG, WEIGHTS]
    loaded = zoo.from_pretrained(tmp_path / "ckpt")
    assert type(loaded) is type(tiny_conn) and not loaded.training
    assert torch.equal(_outputs(loaded, digits), _outputs(tiny_conn, digits))
    config = json.loads((tmp_path / "ckpt" / CONFIG).read_text())
    assert config["family"] == "conn" and config["config"]["copies"] == 3 and config["labels"][3] == "3"


def test_push_to_hub_and_load_back(hub_server, tiny_conn, digits, tmp_path):
    url = zoo.push_to_hub(tiny_conn, "zoo-test/conn-tiny")
    assert "zoo-test/conn-tiny" in url
    loaded = zoo.from_pretrained("zoo-test/conn-tiny")
    assert torch.equal(_outputs(loaded, digits), _outputs(tiny_conn, digits))
    card = ModelCard.load("zoo-test/conn-tiny")
    assert card.data.library_name == "zoo" and "conn" in card.data.tags
    assert "Semiotics Networks" in card.text


def test_push_registered_checkpoint_keeps_bytes_and_model_index(hub_server, tmp_path):
    ids = zoo.list_models("conn-*")
    if not ids:
        pytest.skip("no conn checkpoint is registered yet")
    model_id = ids[0]
    zoo.push_to_hub(model_id, f"zoo-test/{model_id}")
    from huggingface_hub import hf_hub_download

    from zoo.hub import cards_dir

    for name in (WEIGHTS, CONFIG, CARD):
        got = hf_hub_download(f"zoo-test/{model_id}", name)
        assert open(got, "rb").read() == (cards_dir() / model_id / name).read_bytes()
    card = ModelCard.load(f"zoo-test/{model_id}")
    results = card.data.eval_results
    assert results and results[0].metric_type == "accuracy" and 0 < results[0].metric_value <= 100
    a, b = zoo.from_pretrained(model_id), zoo.from_pretrained(f"zoo-test/{model_id}")
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(_outputs(a, x), _outputs(b, x))


def test_missing_hub_repo_raises(hub_server):
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises((RepositoryNotFoundError, CheckpointError)):
        zoo.from_pretrained("zoo-test/does-not-exist")


def test_unknown_id_names_alternatives():
    with pytest.raises(KeyError, match="unknown model id 'conn-nope'.*zoo list"):
        zoo.from_pretrained("conn-nope")


@pytest.fixture
def saved(tiny_conn, tmp_path):
    folder = tmp_path / "ckpt"
    tiny_conn.save_pretrained(folder)
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_truncated_weights_raise_and_change_nothing(saved):
    data = (saved / WEIGHTS).read_bytes()
    (saved / WEIGHTS).write_bytes(data[: len(data) // 2])
    before = _snapshot(saved)
    with pytest.raises(CheckpointError, match=f"{WEIGHTS}.*sha256"):
        from_pretrained(saved)
    assert _snapshot(saved) == before


def test_tampered_weights_raise(saved):
    data = bytearray((saved / WEIGHTS).read_bytes())
    data[-3] ^= 0xFF
    (saved / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or was modified"):
        from_pretrained(saved)


def test_truncated_weights_without_hash_raise_a_readable_error(saved):
    config = json.loads((saved / CONFIG).read_text())
    data = (saved / WEIGHTS).read_bytes()
    (saved / WEIGHTS).write_bytes(data[:1000])
    config["weights_sha256"] = __import__("hashlib").sha256(data[:1000]).hexdigest()
    (saved / CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        from_pretrained(saved)


@pytest.mark.parametrize("field", ["family", "config", "weights_sha256"])
def test_config_missing_a_field_raises(saved, field):
    config = json.loads((saved / CONFIG).read_text())
    del config[field]
    (saved / CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"lacks the field.*{field}"):
        from_pretrained(saved)


def test_weights_of_another_architecture_raise(saved, tmp_path):
    from zoo.methods.conn import ConnModule

    other = ConnModule(net={"autoencoder": "mlp", "ae_widths": [64, 8], "classifier_widths": [32, 16]})
    other.save_pretrained(tmp_path / "other")
    shutil.copy(tmp_path / "other" / WEIGHTS, saved / WEIGHTS)
    config = json.loads((saved / CONFIG).read_text())
    config["weights_sha256"] = json.loads((tmp_path / "other" / CONFIG).read_text())["weights_sha256"]
    (saved / CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not fit.*shape"):
        from_pretrained(saved)


def test_unknown_family_and_bad_config_raise(saved):
    config = json.loads((saved / CONFIG).read_text())
    config["config"]["perception"] = "telepathic"
    (saved / CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="rejects.*telepathic"):
        from_pretrained(saved)
    config["family"] = "nope"
    (saved / CONFIG).write_text(json.dumps(config))
    with pytest.raises(KeyError, match="unknown family 'nope'"):
        from_pretrained(saved)


def test_init_from_copies_weights_and_rejects_other_shapes(saved, tiny_conn):
    from zoo.methods.conn import ConnModule

    net = {"autoencoder": "mlp", "ae_widths": [64, 16], "copies": 3, "steps": 4, "classifier_widths": [32, 16]}
    fresh = ConnModule(net=net, seed=5, init_from=str(saved))
    for (k, a), b in zip(fresh.net.state_dict().items(), tiny_conn.net.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(CheckpointError, match="does not fit"):
        ConnModule(net=net | {"ae_widths": [64, 8]}, init_from=str(saved))


def test_generated_card_has_template_sections(tiny_conn):
    from zoo.hub import build_card

    card = build_card(None, module=tiny_conn, results=[{"metric": "accuracy", "value": 71.5, "dataset": "rmnist"}])
    for section in (
        "## Model details",
        "## Uses",
        "## Limitations",
        "## How to get started",
        "## Training data",
        "## Evaluation",
        "## Citation",
    ):
        assert section in card.text
    assert card.data.eval_results[0].metric_value == 71.5


def test_cli_push_of_a_local_folder(hub_server, saved, capsys):
    from huggingface_hub import HfApi

    from zoo.cli import main

    assert main(["push", str(saved), "zoo-test/cli-push"]) == 0
    files = set(HfApi().list_repo_files("zoo-test/cli-push"))
    assert {WEIGHTS, CONFIG, CARD} <= files


def test_hub_checkpoint_loads_offline_from_the_cache(hub_server, tiny_conn, tmp_path):
    """After one download, HF_HUB_OFFLINE=1 loads the same repo from the cache with no server at all."""
    import os
    import subprocess
    import sys

    zoo.push_to_hub(tiny_conn, "zoo-test/conn-offline")
    zoo.from_pretrained("zoo-test/conn-offline")  # fills the cache
    code = (
        "import torch, zoo; m = zoo.from_pretrained('zoo-test/conn-offline'); "
        "print(float(m.net.classifier.net[0].weight.sum()))"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")  # a port nobody listens on
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) == pytest.approx(float(tiny_conn.net.classifier.net[0].weight.sum()))
