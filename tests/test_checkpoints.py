"""Shipped checkpoints: golden outputs (CONN here; other families in their own files), registry hashes, cards that
agree with the measured results and the recipes, and (slow) `zoo eval` reproducing the measured result, every family."""

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import zoo
from zoo import registry
from zoo.hub import CONFIG, WEIGHTS, CheckpointError, cards_dir

REPO = Path(__file__).resolve().parent.parent
IDS = zoo.list_models("conn-*")  # other families test their checkpoints in their own files


@pytest.mark.parametrize("model_id", IDS)
def test_loaded_checkpoint_reproduces_golden_outputs(model_id):
    from zoo.data.rmnist import load_rmnist

    golden = load_file(REPO / "tests" / "golden" / f"{model_id}.safetensors")
    x, _ = load_rmnist(None)
    model = zoo.from_pretrained(model_id)
    assert not model.training
    with torch.no_grad():
        logits = model(x[golden["index"]])
    torch.testing.assert_close(logits, golden["logits"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model_id", zoo.list_models())
def test_committed_card_is_what_zoo_card_writes_from_the_results_today(model_id, tmp_path):
    """Every number and sentence of a card comes from results/ and the code: regenerating it changes nothing (after
    new results or card code, run the family's ``pipeline.py cards`` or ``zoo card ID`` and commit the cards)."""
    from zoo.cli import render_card
    from zoo.hub import CARD

    render_card(model_id).save(tmp_path / CARD)
    assert (tmp_path / CARD).read_text() == (cards_dir() / model_id / CARD).read_text()


@pytest.mark.parametrize("model_id", zoo.list_models())
def test_card_config_and_recipe_agree_with_registry_and_results(model_id):
    entry = registry.get_entry(model_id)
    folder = cards_dir() / model_id
    config = json.loads((folder / CONFIG).read_text())
    built = entry.builder()
    skip = getattr(type(built), "DATA_FIELDS", ())  # filled from the training data (a text model's vocabulary)
    assert {k: v for k, v in config["config"].items() if k not in skip} == {
        k: v for k, v in asdict(built).items() if k not in skip
    }
    assert config["zoo_id"] == model_id
    assert (folder / WEIGHTS).stat().st_size < 25e6
    recipe = yaml.safe_load((REPO / entry.recipe).read_text())
    for key, value in recipe["model"]["init_args"]["net"].items():
        assert config["config"][key] == value, key
    card = ModelCard.load(folder / "README.md")
    measured = json.loads((REPO / "results" / entry.family / f"{model_id}.json").read_text())
    (result,) = card.data.eval_results
    assert result.metric_value == round(100 * measured[entry.metric], 2)
    paper = registry.get_family(entry.family).paper
    assert paper["arxiv"] in card.text and f"zoo eval {model_id} --json" in card.text


def test_readme_table_is_generated_from_the_registry():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "readme_table.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_registry_hash_mismatch_is_refused(tmp_path, monkeypatch):
    model_id = IDS[0]
    shutil.copytree(cards_dir() / model_id, tmp_path / model_id)
    monkeypatch.setenv("ZOO_CARDS", str(tmp_path))
    weights = tmp_path / model_id / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="registry records"):
        zoo.from_pretrained(model_id)
    weights.write_bytes(bytes(data[:-100]))
    with pytest.raises(CheckpointError, match="truncated"):
        zoo.from_pretrained(model_id)


# `zoo eval` may differ from the measured result by at most this much (a fraction of the metric) per family
EVAL_TOLERANCE = {"conn": 0.005, "gaug": 0.003, "gmn": 0.005, "textssl": 0.003, "litellm4rec": 0.005}
# families whose test data a script generates into the user's cache (not shipped): skipped when it is absent
GENERATED = {"gmn": ("gmn_zoo", "python scripts/gmn_zoo.py --nets 2000")}


@pytest.mark.slow
@pytest.mark.parametrize("model_id", zoo.list_models())
def test_zoo_eval_reproduces_the_card(model_id, capsys, monkeypatch):
    from zoo.cli import main

    entry = registry.get_entry(model_id)
    cache = Path.home() / ".cache" / "zoo" / "derived"  # conftest points ZOO_CACHE at a temp dir
    if entry.family in GENERATED:
        folder, command = GENERATED[entry.family]
        if not (cache / folder).exists():
            pytest.skip(f"needs generated data: {command}")
        monkeypatch.setenv("ZOO_CACHE", str(cache))
    elif (cache / entry.family).exists():  # derived data cached by an earlier run (e.g. frozen item vectors)
        monkeypatch.setenv("ZOO_CACHE", str(cache))
    assert main(["eval", model_id, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    measured = json.loads((REPO / "results" / entry.family / f"{model_id}.json").read_text())
    assert abs(metrics[entry.metric] - measured[entry.metric]) <= EVAL_TOLERANCE[entry.family]
