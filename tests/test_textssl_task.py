"""TextSSL end to end on a slice of R8: data module, training, checkpoint round trip, raw-text prediction."""

import json

import pytest
import torch

pytest.importorskip("torch_geometric")
pytest.importorskip("datasets")
import lightning as L  # noqa: E402

from zoo.methods.textssl import TextSSLModule  # noqa: E402
from zoo.textssl.data import TextSSLDataModule  # noqa: E402


def small_dm(**kw):
    args = dict(dataset="r8", vectors="random", limit=48, batch_size=16) | kw
    return TextSSLDataModule(**args)


def fit(module, dm, epochs=2):
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(module, datamodule=dm)
    return trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    L.seed_everything(0, verbose=False)
    module = TextSSLModule(net={"hidden": 16, "dropout": 0.0}, seed=0)
    dm = small_dm()
    trainer = fit(module, dm)
    out = tmp_path_factory.mktemp("textssl")
    module.save_pretrained(out)
    return module, dm, trainer, out


def test_datamodule_graphs_and_vocabulary(trained):
    module, dm, _, _ = trained
    assert set(dm.graphs) == {"train", "val", "test"} and all(len(v) == 48 for v in dm.graphs.values())
    assert dm.vocab[0] == "<unk>" and dm.vectors.shape == (len(dm.vocab), 300)
    assert len(dm.labels) == 8 and "earn" in dm.labels
    g = dm.graphs["train"][0]
    assert g.cand_index.shape[0] == 2 and int(g.word.max()) < len(dm.vocab) and g.y.shape == (1,)
    # the module took its vocabulary, vectors and classes from the data module
    assert module.vocab == dm.vocab and module.labels == dm.labels and module.net_config.num_classes == 8
    torch.testing.assert_close(module.net.embedding.float(), dm.vectors.half().float())


def test_best_validation_weights_are_restored(trained):
    module, _, trainer, _ = trained
    assert module.best_epoch is not None and 0 <= module.best_epoch < trainer.current_epoch
    assert 0.0 <= module.best_val <= 1.0


def test_checkpoint_round_trip_is_exact(trained):
    import zoo

    module, dm, _, out = trained
    config = json.loads((out / "config.json").read_text())
    assert config["family"] == "textssl" and config["config"]["vocab"] == dm.vocab
    loaded = zoo.from_pretrained(str(out))
    assert loaded.vocab == module.vocab and loaded.labels == module.labels
    from torch_geometric.data import Batch

    batch = Batch.from_data_list(dm.graphs["test"][:8])
    module.eval()
    torch.testing.assert_close(loaded(batch), module(batch), rtol=0, atol=0)
    # a data module attached to the loaded model builds its graphs with the checkpoint's vocabulary
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    dm2 = small_dm(vectors="word2vec")  # ignored: the checkpoint carries its vectors
    (metrics,) = trainer.test(loaded, datamodule=dm2, verbose=False)
    assert dm2.vocab == module.vocab and dm2.vectors is None and 0 <= metrics["test/accuracy"] <= 1


def test_predict_text_batched_and_errors(trained):
    module, _, _, _ = trained
    texts = ["Oil prices rose sharply. Traders said supply was tight.", "The company reported net profit of 5 mln dlrs"]
    preds = module.predict_text(texts, batch_size=1)
    assert len(preds) == 2 and preds[0]["label"] in module.labels
    for p in preds:
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-5
    assert module.predict_text(texts[0]) == preds[:1]  # one string, and batching does not change the result
    with pytest.raises(ValueError, match="empty"):
        module.predict_text(["  "])
    with pytest.raises(ValueError, match="no word of this model"):
        module.predict_text("xyzzy qwertz")


def test_zoo_predict_cli(trained, capsys):
    from zoo.cli import main

    _, _, _, out = trained
    assert main(["predict", "--model", str(out), "--text", "Oil prices rose.", "--text", "Profit rose", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(preds) == 2 and set(preds[0]) == {"label", "probabilities"}
    assert main(["predict", "--model", str(out), "--text", ""]) == 2
    assert "empty" in capsys.readouterr().err


def test_baseline_methods_train(tmp_path):
    L.seed_everything(0, verbose=False)
    cooc = {"structure": "none", "edge_weights": "cooc"}
    for net, data in [({"structure": "none"}, {}), (cooc, {"graph": "document"})]:
        module = TextSSLModule(net={"hidden": 8, **net})
        dm = small_dm(limit=16, **data)
        fit(module, dm, epochs=1)
        assert module.net_config.graph == dm.hparams.graph
        if data:
            assert all(g.cand_index.shape[1] == 0 for g in dm.graphs["train"])


def test_int8_vectors_train_and_round_trip_exactly(tmp_path):
    import zoo

    L.seed_everything(0, verbose=False)
    module = TextSSLModule(net={"hidden": 8, "vector_dtype": "int8"})
    dm = small_dm(limit=16)
    fit(module, dm, epochs=1)
    assert module.net.embedding.dtype == torch.int8
    module.save_pretrained(tmp_path)
    loaded = zoo.from_pretrained(str(tmp_path))
    assert loaded.net_config.vector_dtype == "int8" and loaded.net.embedding.dtype == torch.int8
    from torch_geometric.data import Batch

    batch = Batch.from_data_list(dm.graphs["test"][:8])
    module.eval()
    torch.testing.assert_close(loaded(batch), module(batch), rtol=0, atol=0)


def test_errors():
    with pytest.raises(ValueError, match="expected graph"):
        TextSSLDataModule(graph="corpus")
    with pytest.raises(RuntimeError, match="no vocabulary"):
        TextSSLModule().predict_text("oil")


def test_grid_choice_takes_the_best_mean_validation_over_complete_seeds():
    from zoo.methods.textssl import grid_choice, grid_key, grid_points

    points = grid_points("mr")
    assert len(points) == 8 and {p["hidden"] for p in points} == {96, 128}
    rows = {grid_key("mr", p, s): {"val_accuracy": 0.70} for p in points for s in (0, 1)}
    assert grid_choice({}, "mr") is None
    assert grid_choice(rows, "mr") == (points[0], 0.70, 2)  # all tied: the first point
    rows[grid_key("mr", points[3], 0)] = {"val_accuracy": 0.80}  # best on seed 0 alone ...
    rows[grid_key("mr", points[3], 1)] = {"val_accuracy": 0.61}
    rows[grid_key("mr", points[5], 0)] = {"val_accuracy": 0.74}  # ... but this one is best in the mean
    rows[grid_key("mr", points[5], 1)] = {"val_accuracy": 0.72}
    rows[grid_key("mr", points[1], 2)] = {"val_accuracy": 0.99}  # seed 2 is incomplete: ignored
    point, mean, n = grid_choice(rows, "mr")
    assert point == points[5] and mean == pytest.approx(0.73) and n == 2


def test_grid_summary_marks_the_validation_choice_and_the_recipe_point():
    from zoo.methods.textssl import grid_key, grid_points, grid_summary

    points = grid_points("mr")
    run = {"epochs": 60, "vectors": "minilm"}
    rows = {grid_key("mr", p, s): {"val_accuracy": 0.70, "accuracy": 0.75} | run for p in points for s in (0, 1)}
    rows[grid_key("mr", points[2], 0)] = {"val_accuracy": 0.80, "accuracy": 0.77} | run
    text = grid_summary(rows, "mr", recipe=points[1])
    assert "60-epoch runs with `minilm` vectors" in text
    assert text.count("**") == 2 and "**lr 0.001, hidden 128, batch 64: 75.00 / 76.00**" in text
    assert "batch 128 (the recipe): 70.00 / 75.00" in text
    assert "span 70.00–75.00" in text and "test accuracies 75.00–76.00" in text
    assert "(the recipe)" not in grid_summary(rows, "mr")
    assert "is not the validation choice" not in grid_summary(rows, "mr", points[2])
    assert "The recipe's point is not the validation choice" in text
    assert grid_summary({}, "mr") == ""
