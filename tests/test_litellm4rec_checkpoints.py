"""The shipped litellm4rec checkpoints: golden recommendations (`zoo eval`: tests/test_checkpoints.py)."""

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("datasets")

import zoo  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "model_id",
    [
        "litellm4rec-sasrec-ml1m",
        "litellm4rec-minilm-ml1m",  # MiniLM encodes the catalogue in about a minute
        # SmolLM2's item vectors take minutes to compute on a fresh cache
        pytest.param("litellm4rec-smollm2-ml1m", marks=pytest.mark.slow),
    ],
)
def test_recommendations_match_golden(model_id):
    golden = json.loads((REPO / "tests" / "golden" / f"{model_id}.json").read_text())
    model = zoo.from_pretrained(model_id)
    recs = model.recommend(golden["histories"], k=10)
    for rec, want in zip(recs, golden["recommendations"]):
        assert [r["movie_id"] for r in rec] == [w["movie_id"] for w in want]
        assert [r["score"] for r in rec] == pytest.approx([w["score"] for w in want], abs=1e-3)
    config = json.loads((REPO / "cards" / model_id / "config.json").read_text())
    if config["config"]["arch"] == "lite":  # the card names the canonical base model of each LLM
        from zoo.backbones import resolve_backbone

        for key, field in (("recommendation_llm", "rec_backbone"), ("item_llm", "item_backbone")):
            assert config["base_model"][key] == resolve_backbone(config["config"][field])["name"]
