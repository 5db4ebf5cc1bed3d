"""GAug family: restricted unpickling, the data files, sparse normalisation vs the official dense formula, GAug-M's
edge edit, GAug-O's sampler and losses, and the recipes on a user-built graph."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torch_geometric")

from torch_geometric.data import Data  # noqa: E402

from zoo.cli import main  # noqa: E402
from zoo.data.gaug import (  # noqa: E402
    GraphDataModule,
    check_graph,
    load_edge_scores,
    load_gaug_graph,
    load_planetoid_graph,
    restricted_load,
)
from zoo.methods.gaug import GAugModule, warmup_lr  # noqa: E402
from zoo.models.gaug import (  # noqa: E402
    GAugConfig,
    GNNClassifier,
    build_gaug,
    dense_gcn_normalize,
    edge_loss,
    edit_edges,
    gcn_normalize,
    sample_adjacency,
)

REPO = Path(__file__).resolve().parent.parent


def _random_graph(n=12, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    upper = (torch.rand(n, n, generator=g) < p).triu(1)
    a = (upper | upper.t()).float()
    return a, a.nonzero().t()


def _official_norm(a):
    # the official form: dense diagonal matrices and two N^3 products
    a = a + torch.eye(len(a))
    d = torch.diag(a.sum(1).pow(-0.5))
    return d @ a @ d


# -- data -------------------------------------------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_restricted_unpickler_refuses_arbitrary_globals(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"adj": _Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle the global posix.system"):
        restricted_load(path)
    path.write_bytes(pickle.dumps(print))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        restricted_load(path)


def test_restricted_unpickler_reads_tensors_and_arrays(tmp_path):
    import numpy as np

    path = tmp_path / "ok.pkl"
    obj = [np.arange(5), torch.tensor([1, 2, 3])]
    path.write_bytes(pickle.dumps(obj))
    a, t = restricted_load(path)
    assert a.tolist() == [0, 1, 2, 3, 4] and t.tolist() == [1, 2, 3]


def test_edge_scores_load_from_official_pickles_npy_and_pt_with_clear_errors(tmp_path):
    import numpy as np

    probs = np.random.default_rng(0).random((5, 5)).astype(np.float32)
    np.fill_diagonal(probs, 0)  # the official vgae/ writes sigma(Z Z^T) with a zero diagonal, pickle protocol 3
    (tmp_path / "cora_graph_5_logits.pkl").write_bytes(pickle.dumps(probs, protocol=3))
    np.save(tmp_path / "s.npy", probs)
    torch.save(torch.from_numpy(probs), tmp_path / "s.pt")
    for name in ("cora_graph_5_logits.pkl", "s.npy", "s.pt"):
        scores = load_edge_scores(tmp_path / name, num_nodes=5)
        assert scores.dtype == torch.float32 and torch.equal(scores, torch.from_numpy(probs))
    with pytest.raises(ValueError, match="for 5 nodes, the graph has 6"):
        load_edge_scores(tmp_path / "s.npy", num_nodes=6)
    with pytest.raises(FileNotFoundError, match="set edge_probs to null"):
        load_edge_scores(tmp_path / "missing.pkl")
    with pytest.raises(ValueError, match=r"ending in \('.pkl', '.npy', '.pt'\)"):
        load_edge_scores(tmp_path / "s.csv")
    np.save(tmp_path / "rect.npy", probs[:4])
    with pytest.raises(ValueError, match=r"square \[N, N\] score matrix .* got shape \(4, 5\)"):
        load_edge_scores(tmp_path / "rect.npy")
    probs[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", probs)
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_edge_scores(tmp_path / "nan.npy")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([probs]))
    with pytest.raises(ValueError, match="one array or tensor, got list"):
        load_edge_scores(tmp_path / "list.pkl")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_edge_scores(tmp_path / "evil.pkl")


@pytest.mark.parametrize("name, nodes, edges, classes, split", [
    ("cora", 2708, 5278, 7, (140, 500, 1000)),
    ("citeseer", 3327, 4552, 6, (120, 500, 1000)),
])  # fmt: skip
def test_gaug_and_planetoid_files_give_the_published_graph(name, nodes, edges, classes, split):
    a, b = load_gaug_graph(name), load_planetoid_graph(name)
    for g in (a, b):
        check_graph(g)
        assert g.num_nodes == nodes and g.edge_index.shape[1] == 2 * edges
        assert int(g.y.max()) + 1 == classes
        assert tuple(int(m.sum()) for m in (g.train_mask, g.val_mask, g.test_mask)) == split
        assert not bool((g.edge_index[0] == g.edge_index[1]).any())
    # the two sources hold the same graph, node for node
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert torch.equal(a.test_mask, b.test_mask)


def test_bad_graphs_give_clear_errors():
    x, y = torch.rand(5, 3), torch.tensor([0, 1, 0, 1, 2])
    ei = torch.tensor([[0, 1], [1, 0]])
    masks = {k: torch.ones(5, dtype=torch.bool) for k in ("train_mask", "val_mask", "test_mask")}
    check_graph(Data(x=x, y=y, edge_index=ei, **masks), num_classes=3)
    with pytest.raises(ValueError, match="expected node features x of shape"):
        check_graph(Data(y=y, edge_index=ei, num_nodes=5, **masks))
    with pytest.raises(ValueError, match=r"labels y in \[0, 2\).*maximum of 2"):
        check_graph(Data(x=x, y=y, edge_index=ei, **masks), num_classes=2)
    with pytest.raises(ValueError, match="labels y >= 0"):
        check_graph(Data(x=x, y=y - 1, edge_index=ei, **masks))
    with pytest.raises(ValueError, match=r"edge_index holds node ids in \[0, 7\], but the graph has 5 nodes"):
        check_graph(Data(x=x, y=y, edge_index=torch.tensor([[0, 7], [7, 0]]), **masks))
    with pytest.raises(ValueError, match=r"edge_index of shape \[2, E\]"):
        check_graph(Data(x=x, y=y, edge_index=torch.tensor([0, 1]), **masks))


# -- normalisation ----------------------------------------------------------------------------------------------------
def test_sparse_normalisation_equals_the_official_dense_formula():
    a, ei = _random_graph(15)
    n = len(a)
    index, weight = gcn_normalize(ei, n)
    sparse = torch.zeros(n, n).index_put_((index[0], index[1]), weight, accumulate=True)
    torch.testing.assert_close(sparse, _official_norm(a))
    torch.testing.assert_close(dense_gcn_normalize(a + torch.eye(n)), _official_norm(a))
    # eigenvalue 1 with eigenvector D~^{1/2} 1
    d = (a + torch.eye(n)).sum(1).sqrt()
    torch.testing.assert_close(sparse @ d, d)


# -- GAug-M -----------------------------------------------------------------------------------------------------------
def test_edit_removes_lowest_and_adds_highest_scored_pairs_exactly():
    n = 10
    a, ei = _random_graph(n, 0.4, seed=3)
    g = torch.Generator().manual_seed(1)
    s = torch.randn(n, n, generator=g)
    logits = s + s.t()
    upper = ei[:, ei[0] < ei[1]]
    m = upper.shape[1]
    rm, add = 25, 40
    n_rm, n_add = m * rm // 100, m * add // 100
    new = edit_edges(logits, ei, rm, add)
    new_set = {tuple(p) for p in new.t().tolist()}
    assert all((j, i) in new_set for i, j in new_set) and all(i != j for i, j in new_set)
    assert len(new_set) // 2 == m - n_rm + n_add
    scores = sorted((float(logits[i, j]), (i, j)) for i, j in upper.t().tolist())
    removed = {p for _, p in scores[:n_rm]}
    assert all(p not in new_set for p in removed) and all(p in new_set for _, p in scores[n_rm:])
    old = {tuple(p) for p in upper.t().tolist()}
    free = sorted((float(logits[i, j]), (i, j)) for i in range(n) for j in range(i + 1, n) if (i, j) not in old)
    assert {p for _, p in free[-n_add:]} == {(i, j) for i, j in new_set if i < j and (i, j) not in old}
    assert torch.equal(edit_edges(logits, ei, 0, 0), ei)


def test_edit_is_equivariant_to_relabelling_the_nodes():
    n = 9
    _, ei = _random_graph(n, 0.4, seed=5)
    s = torch.randn(n, n, generator=torch.Generator().manual_seed(2))
    logits = s + s.t()
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3))  # new id of old node i is inv[i]
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    a = {tuple(p) for p in inv[edit_edges(logits, ei, 20, 50)].t().tolist()}
    b = {tuple(p) for p in edit_edges(logits[perm][:, perm], inv[ei], 20, 50).t().tolist()}
    assert a == b


# -- GAug-O -----------------------------------------------------------------------------------------------------------
def test_sampler_is_binary_symmetric_unbiased_and_differentiable():
    n = 8
    _, ei = _random_graph(n, 0.4, seed=4)
    logits = torch.rand(n, n, generator=torch.Generator().manual_seed(0))
    logits = (logits + logits.t()).requires_grad_()
    g = torch.Generator().manual_seed(0)
    draws = [sample_adjacency(logits, ei, 0.7, 1.0, generator=g) for _ in range(4000)]
    a = draws[0]
    assert set(a.unique().tolist()) <= {0.0, 1.0} and torch.equal(a, a.t()) and bool((a.diagonal() == 1).all())
    probs = 0.7 * logits / logits.max()
    orig = torch.zeros(n, n)
    orig[ei[0], ei[1]] = 1
    probs = (probs + 0.3 * (orig + torch.eye(n))).detach()
    mean = torch.stack(draws).detach().mean(0)
    off = ~torch.eye(n, dtype=torch.bool)
    assert (mean - probs)[off].abs().max() < 0.05
    (a * torch.arange(n * n).view(n, n).float()).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_alpha_zero_reproduces_the_original_graph_and_classifier():
    n = 10
    a, ei = _random_graph(n, 0.4, seed=6)
    logits = torch.rand(n, n) * 3
    sampled = sample_adjacency(logits, ei, 0.0, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, a + torch.eye(n))
    x = torch.rand(n, 4)
    for gnn in ("gcn", "gsage", "jknet", "gat"):
        clf = GNNClassifier(GAugConfig(gnn=gnn, in_channels=4, num_classes=3, hidden=8, heads=2, layers=2)).eval()
        torch.testing.assert_close(clf.forward_dense(x, sampled), clf(x, ei))


@pytest.mark.parametrize("gnn", ["gsage", "jknet"])
def test_sage_layers_project_first_and_equal_pyg_sageconv(gnn):
    # the classifier averages (H W) instead of SAGEConv's W·mean(H): the same value, checked against PyG's own forward
    from torch_geometric.utils import add_remaining_self_loops

    n = 14
    _, ei = _random_graph(n, 0.3, seed=3)
    x = torch.rand(n, 9)
    clf = GNNClassifier(GAugConfig(gnn=gnn, in_channels=9, num_classes=3, hidden=8, layers=3)).eval()
    loops, _ = add_remaining_self_loops(ei, num_nodes=n)
    h, outs = x, []
    for i, conv in enumerate(clf.convs):
        h = conv(h, loops)
        if gnn == "jknet" or i < len(clf.convs) - 1:
            h = F.relu(h)
        outs.append(h)
    reference = clf.out(torch.cat(outs, -1)) if gnn == "jknet" else h
    torch.testing.assert_close(clf(x, ei), reference)


def test_edge_loss_matches_hand_computation_on_a_path():
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # path 0-1-2
    logits = torch.tensor([[0.5, 2.0, -1.0], [2.0, 1.0, 0.3], [-1.0, 0.3, 0.0]])
    target = torch.tensor([[1.0, 1, 0], [1, 1, 1], [0, 1, 1]])  # A + I, S = 7
    pos_weight, w = (9 - 7) / 7, 9 / (2 * (9 - 7))
    ref = w * F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(pos_weight))
    torch.testing.assert_close(edge_loss(logits, ei), ref)


def test_warmup_starts_at_zero_and_ends_at_lr():
    assert warmup_lr(0, 200, 0.01, 3) == 0.0
    assert warmup_lr(199, 200, 0.01, 3) == pytest.approx(0.01)
    assert 0 < warmup_lr(100, 200, 0.01, 3) < 0.01
    assert warmup_lr(0, 200, 0.01, 0) == 0.01


# -- recipes on a user graph ------------------------------------------------------------------------------------------
def _user_graph(path: Path) -> Path:
    """Three noisy clusters of 20 nodes, 6 features, masks 15 / 15 / 30."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(20)
    x = F.one_hot(y, 6).float() + 0.5 * torch.rand(60, 6, generator=g)
    same = (y[:, None] == y[None]) & (torch.rand(60, 60, generator=g) < 0.2)
    ei = (same.triu(1) | same.triu(1).t()).nonzero().t()
    perm = torch.randperm(60, generator=g)
    masks = {k: torch.zeros(60, dtype=torch.bool) for k in ("train_mask", "val_mask", "test_mask")}
    masks["train_mask"][perm[:15]], masks["val_mask"][perm[15:30]], masks["test_mask"][perm[30:]] = True, True, True
    torch.save({"x": x, "y": y, "edge_index": ei, **masks}, path)
    return path


@pytest.mark.parametrize("method", ["o", "m", "original"])
def test_debug_recipe_runs_on_a_user_graph_and_exports(tmp_path, method):
    import zoo

    graph = _user_graph(tmp_path / "graph.pt")
    out = tmp_path / "export"
    main(
        [
            "fit", "--config", str(REPO / "recipes/gaug/debug.yaml"), "--data.init_args.path", str(graph),
            "--model.init_args.net.method", method, "--model.init_args.net.rm_pct", "10",
            "--model.init_args.net.add_pct", "20", "--model.init_args.vgae_epochs", "3",
            "--trainer.default_root_dir", str(tmp_path), "--trainer.callbacks+=zoo.hub.SavePretrained",
            f"--trainer.callbacks.dirpath={out}",
        ]
    )  # fmt: skip
    model = zoo.from_pretrained(out)
    assert model.net_config.in_channels == 6 and model.net_config.num_classes == 3
    raw = torch.load(graph)
    x = raw["x"] / raw["x"].sum(1, keepdim=True)
    with torch.no_grad():
        logits = model(x, raw["edge_index"])
    assert logits.shape == (60, 3) and torch.isfinite(logits).all()


def test_data_module_from_data_rejects_a_graph_without_features():
    with pytest.raises(ValueError, match="without features"):
        GraphDataModule.from_data(Data(y=torch.zeros(3, dtype=torch.long), edge_index=torch.zeros(2, 0).long()))


def test_gaug_m_keeps_its_edit_for_evaluation():
    ei = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    x = torch.eye(6)
    y = torch.tensor([0, 0, 1, 1, 0, 1])
    masks = {k: torch.ones(6, dtype=torch.bool) for k in ("train_mask", "val_mask", "test_mask")}
    module = GAugModule(
        net=dict(method="m", in_channels=6, num_classes=2, hidden=4, ep_hidden=4, ep_emb=2, add_pct=100)
    )
    batch = Data(x=x, y=y, edge_index=ei, **masks)
    edited = module._graph(batch)
    assert edited.shape[1] == 2 * 4  # 2 edges + 2 added
    assert torch.equal(edited, module.net.augment(x, ei))


def test_vgae_seed_fixes_the_edited_graph_across_classifier_seeds(tmp_path):
    # a model of seed 3 with vgae_seed 1 trains the very VGAE a model of seed 1 trains (same edit), while its
    # classifier starts from seed 3's weights
    graph = torch.load(_user_graph(tmp_path / "graph.pt"))
    data = Data(**graph)
    data.x = data.x / data.x.sum(1, keepdim=True)
    net = dict(method="m", in_channels=6, num_classes=3, hidden=4, ep_hidden=4, ep_emb=2, rm_pct=10, add_pct=20)

    def trained(**kw):
        module = GAugModule(net=dict(net), vgae_epochs=5, **kw)
        torch.manual_seed(kw["seed"])  # as on_fit_start seeds the run
        module._train_vgae(data)
        return module

    ref, fixed, other = trained(seed=1), trained(seed=3, vgae_seed=1), trained(seed=3)
    ep = ref.net.edge_predictor.state_dict()
    assert all(torch.equal(ep[k], v) for k, v in fixed.net.edge_predictor.state_dict().items())
    assert not all(torch.equal(ep[k], v) for k, v in other.net.edge_predictor.state_dict().items())
    assert torch.equal(ref.net.augment(data.x, data.edge_index), fixed.net.augment(data.x, data.edge_index))
    clf = other.net.classifier.state_dict()
    assert all(torch.equal(clf[k], v) for k, v in fixed.net.classifier.state_dict().items())


def test_official_probability_pickle_of_the_vgae_gives_the_vgae_edit(tmp_path):
    # the VGAE's own probabilities, written as the official vgae/ writes them, edit the graph exactly as the VGAE
    import numpy as np

    data = Data(**torch.load(_user_graph(tmp_path / "graph.pt")))
    net = dict(method="m", in_channels=6, num_classes=3, hidden=4, ep_hidden=4, ep_emb=2, rm_pct=10, add_pct=20)
    module = GAugModule(net=dict(net), vgae_epochs=5)
    module._train_vgae(data)
    with torch.no_grad():
        probs = torch.sigmoid(module.net.edge_logits(data.x, data.edge_index)).numpy()
    np.fill_diagonal(probs, 0)
    path = tmp_path / "user_graph_1_logits.pkl"
    path.write_bytes(pickle.dumps(probs, protocol=3))
    given = GAugModule(net=dict(net), edge_probs=str(path))
    assert torch.equal(given.net.augment(data.x, data.edge_index), module.net.augment(data.x, data.edge_index))
    with pytest.raises(ValueError, match="needs net.method='m', got 'o'"):
        GAugModule(net=dict(net, method="o"), edge_probs=str(path))


def test_gaug_m_with_edge_probs_trains_no_vgae_and_reloads_its_scores(tmp_path):
    import zoo

    graph = _user_graph(tmp_path / "graph.pt")
    raw = torch.load(graph)
    g = torch.Generator().manual_seed(1)
    scores = torch.rand(60, 60, generator=g)
    scores = scores + scores.t()
    torch.save(scores, tmp_path / "scores.pt")
    out = tmp_path / "export"
    main(
        [
            "fit", "--config", str(REPO / "recipes/gaug/debug.yaml"), "--data.init_args.path", str(graph),
            "--model.init_args.net.method", "m", "--model.init_args.net.rm_pct", "10",
            "--model.init_args.net.add_pct", "20", "--model.init_args.edge_probs", str(tmp_path / "scores.pt"),
            "--trainer.default_root_dir", str(tmp_path), "--trainer.callbacks+=zoo.hub.SavePretrained",
            f"--trainer.callbacks.dirpath={out}",
        ]
    )  # fmt: skip
    model = zoo.from_pretrained(out)
    assert torch.equal(model.net.edge_scores, scores)
    x = raw["x"] / raw["x"].sum(1, keepdim=True)
    assert torch.equal(model.net.augment(x, raw["edge_index"]), edit_edges(scores, raw["edge_index"], 10, 20))
    torch.manual_seed(0)  # the VGAE stayed where a model of seed 0 starts it
    fresh = build_gaug(model.net_config).edge_predictor.state_dict()
    assert all(torch.equal(fresh[k], v) for k, v in model.net.edge_predictor.state_dict().items())
    (tmp_path / "scores.pt").unlink()
    with pytest.raises(FileNotFoundError, match="scores.pt"):
        zoo.from_pretrained(out)
    torch.save(scores[:59, :59], tmp_path / "scores.pt")
    dm = GraphDataModule(path=str(graph))
    with pytest.raises(ValueError, match="holds scores for 59 nodes, the graph has 60"):
        L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False).fit(
            GAugModule(net=dict(method="m"), edge_probs=str(tmp_path / "scores.pt")), dm
        )


def test_tuned_edits_picks_the_best_validation_run_and_breaks_ties_towards_small_edits():
    from zoo.methods.gaug import tuned_edits

    def row(gnn, seed, rm, add, val):
        return {"gnn": gnn, "dataset": "cora", "seed": seed, "rm_pct": rm, "add_pct": add, "val_micro_f1": val}

    rows = [
        row("gcn", 0, 0, 0, 0.80), row("gcn", 1, 2, 5, 0.81), row("gcn", 0, 2, 2, 0.81), row("gcn", 2, 2, 2, 0.81),
        row("gat", 0, 0, 57, 0.79), row("gat", 1, 10, 0, 0.78),
    ]  # fmt: skip
    assert tuned_edits(rows, grid=None) == {("gcn", "cora"): (0, 2, 2), ("gat", "cora"): (0, 0, 57)}
    # with a grid, only draws that cover it choose: gcn's draw 0 does ((0, 0) and (2, 2)), the others do not
    assert tuned_edits(rows, grid=[(0, 0), (2, 2)]) == {("gcn", "cora"): (0, 2, 2)}
    assert tuned_edits(rows) == {}  # none covers the 36-point TUNE_GRID


def test_tuned_alphas_averages_complete_seeds_and_breaks_ties_towards_small_alpha():
    from zoo.methods.gaug import tuned_alphas

    def row(gnn, seed, alpha, val):
        return {"gnn": gnn, "dataset": "cora", "seed": seed, "alpha": alpha, "val_micro_f1": val}

    rows = [
        row("gat", 0, 0.1, 0.80), row("gat", 0, 1.0, 0.82), row("gat", 1, 0.1, 0.83), row("gat", 1, 1.0, 0.80),
        row("gat", 2, 0.1, 0.70),  # seed 2 lacks alpha 1.0: it does not count
        row("jknet", 0, 0.1, 0.79), row("jknet", 0, 1.0, 0.79),
        row("gcn", 0, 0.1, 0.90),  # no seed covers the grid: nothing is chosen
    ]  # fmt: skip
    # gat: means 0.815 (0.1) vs 0.81 (1.0); jknet: a tie goes to the smaller alpha
    assert tuned_alphas(rows, grid=(0.1, 1.0)) == {("gat", "cora"): 0.1, ("jknet", "cora"): 0.1}
    rows += [row("gat", 3, 0.1, 0.80), row("gat", 3, 1.0, 0.86)]  # a third complete seed: 0.81 vs 0.827
    assert tuned_alphas(rows, grid=(0.1, 1.0))[("gat", "cora")] == 1.0
    assert tuned_alphas(rows) == {}  # none covers the default TUNE_ALPHAS


def test_best_draws_needs_every_draw_ignores_eval_rows_and_breaks_ties_towards_the_lower_draw():
    from zoo.methods.gaug import best_draws

    def row(gnn, draw, val, phase="search"):
        return {"phase": phase, "gnn": gnn, "dataset": "cora", "draw": draw, "val_micro_f1": val}

    rows = [
        row("gcn", 0, 0.80), row("gcn", 1, 0.82), row("gcn", 2, 0.82), row("gcn", 0, 0.99, "eval"),
        row("gat", 0, 0.81), row("gat", 2, 0.85),  # gat lacks draw 1
    ]  # fmt: skip
    assert best_draws(rows, 3) == {("gcn", "cora"): 1}
    assert best_draws(rows, 1) == {("gcn", "cora"): 0, ("gat", "cora"): 0}
    assert best_draws(rows, 4) == {}
    rows = [r | {"added_homophily": 0.5 - r["draw"] / 10} for r in rows]  # the oracle picks by another key
    assert best_draws(rows, 3, key="added_homophily") == {("gcn", "cora"): 0}


def test_gaug_m_variants_gathers_every_gaug_m_measurement_by_its_source(tmp_path):
    import json

    from zoo.methods.gaug import GAUG_M_VARIANTS, gaug_m_variants

    def rows(*items):
        return json.dumps(
            {"rows": [dict(zip(("gnn", "dataset", "micro_f1"), ("gcn", "cora", f))) | k for k, f in items]}
        )

    (tmp_path / "table.json").write_text(rows(({"method": "original"}, 0.8), ({"method": "o"}, 0.9)))
    (tmp_path / "draws.json").write_text(
        rows(
            ({"phase": "search"}, 0.1), ({"phase": "eval"}, 0.7), ({"phase": "eval"}, 0.72), ({"phase": "oracle"}, 0.6)
        )
    )
    (tmp_path / "official_vgae.json").write_text(rows(({"vgae_seed": 7}, 0.5), ({"vgae_seed": 3}, 0.9)))
    stats = gaug_m_variants(tmp_path)
    assert set(stats) == {(v, "gcn", "cora") for v in ("original", "draws", "oracle", "official-vgae")}
    assert stats[("draws", "gcn", "cora")][0] == pytest.approx(71.0) and stats[("draws", "gcn", "cora")][2] == 2
    assert stats[("official-vgae", "gcn", "cora")][0] == pytest.approx(50.0)  # the official default seed only
    assert {k[0] for k in stats} <= set(GAUG_M_VARIANTS)
    assert gaug_m_variants(tmp_path / "none") == {}


def test_recipe_text_for_validation_tuned_gaug_o_differs_from_the_official_recipe_only_in_alpha():
    import importlib.util

    import yaml

    spec = importlib.util.spec_from_file_location("gaug_pipeline", REPO / "scripts" / "gaug_pipeline.py")
    pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)
    official = yaml.safe_load(pipeline.recipe_text("o", "gat", "cora"))
    tuned = yaml.safe_load(pipeline.recipe_text("o-val", "gat", "cora", 0.6))
    assert tuned["model"]["init_args"].pop("alpha") == 0.6
    assert official["model"]["init_args"].pop("alpha") == pipeline.TUNED_O[("gat", "cora")][0]
    assert tuned == official


_FAKE_VGAE = {  # a stand-in for a zhao-tong/GAug checkout's vgae/: the same imports, file reads and outputs
    "dataloader.py": """
import pickle
import dgl
BASE_DIR = '/nonexistent'
class DataLoader:
    def __init__(self, args):
        with open(f'{BASE_DIR}/data/citation_networks/ind.{args.dataset}.graph', 'rb') as f:
            self.graph = pickle.load(f, encoding='latin1')
        with open(f'{BASE_DIR}/data/citation_networks/ind.{args.dataset}.x', 'rb') as f:
            self.x = pickle.load(f, encoding='latin1')
""",
    "utils.py": "def get_scores(edges_pos, edges_neg, A_pred, adj_label):\n    raise RuntimeError('not shimmed')\n",
    "models.py": "",
    "main.py": """
import argparse, pickle
import numpy as np, torch
from utils import *
from dataloader import DataLoader
def get_args():
    p = argparse.ArgumentParser()
    for k in ('--dataset', '--val_frac', '--gen_graphs', '--epochs', '--seed'):
        p.add_argument(k)
    p.add_argument('--no_mask', action='store_true')
    return p.parse_args()
def main(args):
    dl = DataLoader(args)
    n = len(dl.graph)
    a = torch.arange(float(n * n)).view(n, n)
    r = get_scores(np.array([[0, 1], [2, 3]]), np.array([[1, 0], [3, 2]]), a, None)
    for i in range(int(args.gen_graphs)):
        out = np.array([[r['roc'], dl.x.tocoo().nnz, n, float(args.seed)]], dtype=np.float32)
        pickle.dump(out, open(f'graphs/{args.dataset}_graph_{i + 1}_logits.pkl', 'wb'))
""",
}


def test_official_vgae_driver_shims_dgl_the_unpickler_the_data_folder_and_the_scores(tmp_path):
    import importlib.util

    from zoo.data import data_root

    for name, text in _FAKE_VGAE.items():
        (tmp_path / "GAug" / "vgae").mkdir(parents=True, exist_ok=True)
        (tmp_path / "GAug" / "vgae" / name).write_text(text)
    spec = importlib.util.spec_from_file_location("gaug_official_vgae", REPO / "scripts" / "gaug_official_vgae.py")
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    path_before = list(sys.path)
    paths = driver.run_official_vgae(tmp_path / "GAug", "cora", 2, tmp_path / "out", seed=3)
    assert sys.path == path_before and not {"dgl", "dataloader", "main"} & set(sys.modules)  # left as found
    assert [p.name for p in paths] == ["cora_graph_1_logits.pkl", "cora_graph_2_logits.pkl"]
    roc, nnz, n, seed = restricted_load(paths[1])[0]
    # scores read at (rows, cols): positives A[0, 1] = 1 and A[2, 3] = 2n + 3 against negatives A[1, 0] = n and
    # A[3, 2] = 3n + 2: one of four pairs ranked right
    assert roc == 0.25 and n == 2708 and seed == 3
    assert nnz == restricted_load(data_root() / "planetoid/ind.cora.x", "latin1").indices.size
    with pytest.raises(FileNotFoundError, match="zhao-tong/GAug checkout with vgae/main.py"):
        driver.run_official_vgae(tmp_path, "cora", 1, tmp_path / "out")


def test_import_zoo_and_listing_work_without_torch_geometric():
    code = (
        "import sys; sys.modules['torch_geometric'] = None\n"
        "import zoo\n"
        "ids = zoo.list_models('gaug-*'); assert 'gaug-o-gcn-cora' in ids, ids\n"
        "from zoo.models.gaug import GAugConfig, GAugNet\n"
        "try:\n"
        "    GAugNet(GAugConfig(in_channels=3, num_classes=2))\n"
        "except ModuleNotFoundError as e:\n"
        "    assert 'pip install zoo[graph]' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('expected ModuleNotFoundError')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
