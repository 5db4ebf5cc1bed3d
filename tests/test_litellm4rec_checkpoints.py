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
    if config["config"]["arch"] == "lite":
        assert config["base_model"]["recommendation_llm"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
