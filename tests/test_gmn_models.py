"""GMN metanetwork and baselines: zero-initialised blocks are the identity, the readout ignores edge order and node
labels, batches give the per-graph outputs of single graphs, the baselines' inputs match their definitions, and
everything trains."""

import json
from dataclasses import asdict

import pytest
import torch
from torch import nn

pytest.importorskip("torch_geometric")

from torch_geometric.data import Batch, Data  # noqa: E402

from zoo.gmn import DeepSetsLayer, ResidualBlock, TransformerBlock, to_graph  # noqa: E402
from zoo.models.gmn import (  # noqa: E402
    DMC,
    GMN,
    DeepSetsMeta,
    DeepSetsMetaConfig,
    DMCConfig,
    GMNConfig,
    StatNN,
    StatNNConfig,
    parameter_sequences,
    tensor_statistics,
)


def _nets():
    torch.manual_seed(0)
    return [
        nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.Flatten(), nn.Linear(12, 2)
        ),
        nn.Sequential(
            nn.Conv2d(1, 3, 3), ResidualBlock(3, 5, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2)
        ),
        nn.Sequential(nn.Linear(2, 6), TransformerBlock(6, 2, 8), nn.Linear(6, 1)),
        nn.Sequential(DeepSetsLayer(2, 5), nn.ReLU(), DeepSetsLayer(5, 1)),
        nn.Sequential(nn.Linear(3, 2)),
    ]


@pytest.fixture(scope="module")
def graphs():
    return [to_graph(n) for n in _nets()]


def _models(dtype=torch.float64):
    torch.manual_seed(0)
    models = [
        GMN(GMNConfig(hidden=16, layers=3, zero_init=False)),
        GMN(GMNConfig(hidden=16, layers=2, zero_init=False, undirected=True, activation_embedding=True)),
        DMC(DMCConfig(hidden=16, layers=4, channels=4)),
        DeepSetsMeta(DeepSetsMetaConfig(hidden=16)),
        StatNN(StatNNConfig(hidden=16, max_tensors=24)),
    ]
    return [m.to(dtype).eval() for m in models]


def test_zero_init_blocks_are_the_identity(graphs):
    b = Batch.from_data_list(graphs)
    gmn = GMN(GMNConfig(hidden=16, layers=3, zero_init=True, undirected=True))
    x, e, edge_index, edge_batch, num_graphs = gmn.embed(b)
    assert num_graphs == len(graphs) and edge_index.shape[1] == 2 * b.edge_index.shape[1] == len(edge_batch)
    x2, e2 = gmn.propagate(x, e, edge_index)
    assert torch.equal(x2, x) and torch.equal(e2, e)
    moved = GMN(GMNConfig(hidden=16, layers=3, zero_init=False))
    x, e, edge_index, _, _ = moved.embed(b)
    x2, e2 = moved.propagate(x, e, edge_index)
    assert not torch.allclose(e2, e) and not torch.allclose(x2, x)


def _shuffled(g: Data, seed: int) -> Data:
    """The same graph with its edges in another order and its nodes relabelled."""
    gen = torch.Generator().manual_seed(seed)
    ep, nperm = torch.randperm(g.edge_index.shape[1], generator=gen), torch.randperm(g.num_nodes, generator=gen)
    new_id = torch.empty_like(nperm)
    new_id[nperm] = torch.arange(g.num_nodes)  # node nperm[k] becomes node k
    out = g.clone()
    out.x, out.act = g.x[nperm], g.act[nperm]
    out.edge_index = new_id[g.edge_index[:, ep]]
    for key in ("edge_attr", "edge_param", "edge_flat"):
        out[key] = g[key][ep]
    return out


def test_gmn_ignores_edge_order_and_node_labels(graphs):
    models = _models()[:2] + [_models()[3], _models()[4]]  # DMC reads edges in order by definition
    with torch.no_grad():
        for g in graphs:
            for m in models:
                assert torch.allclose(m(g.clone()), m(_shuffled(g, 0)), atol=1e-12, rtol=1e-10)


def test_batched_equals_one_at_a_time(graphs):
    batch = Batch.from_data_list(graphs)
    with torch.no_grad():
        for m in _models():
            y = m(batch)
            assert y.shape == (len(graphs),)
            single = torch.cat([m(g) for g in graphs])
            assert torch.allclose(y, single, atol=1e-12, rtol=1e-10), type(m).__name__
    with torch.no_grad():  # float32 as well (the default)
        m = GMN(GMNConfig(hidden=16, layers=2)).eval()
        assert torch.allclose(m(batch), torch.cat([m(g) for g in graphs]), atol=1e-5)


def test_baselines_and_gmn_train(graphs):
    """One value per graph, gradients reach every parameter, a few Adam steps fit random targets of 5 graphs."""
    batch = Batch.from_data_list(graphs)
    target = torch.rand(len(graphs))
    for m in _models(torch.float32):
        m.train()
        y = m(batch)
        assert y.shape == (len(graphs),) and torch.isfinite(y).all()
        loss = nn.functional.binary_cross_entropy_with_logits(y, target)
        loss.backward()
        if isinstance(m, GMN):  # zero-init off here: every parameter gets a gradient
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
        opt = torch.optim.Adam(m.parameters(), lr=3e-3)
        first = loss.item()
        for _ in range(30):
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(m(batch), target)
            loss.backward()
            opt.step()
        assert loss.item() < first, type(m).__name__
    gmn = GMN(GMNConfig(hidden=16, layers=3))  # zero-init: the blocks learn from the first step on
    nn.functional.binary_cross_entropy_with_logits(gmn(batch), target).backward()
    assert all(b.edge_out.weight.grad.abs().sum() > 0 for b in gmn.blocks)


def test_edge_features_one_row_per_edge(graphs):
    for cfg in (GMNConfig(hidden=8, layers=2), GMNConfig(hidden=8, layers=2, undirected=True)):
        out = GMN(cfg)(graphs[1])
        assert out.ndim == 1
        assert GMN(cfg).edge_features(graphs[1]).shape == (graphs[1].edge_index.shape[1], 8)


def test_parameter_sequences_are_the_flattened_networks(graphs):
    seq, lengths = parameter_sequences(Batch.from_data_list(graphs))
    for i, net in enumerate(_nets()):
        flat = torch.cat([p.detach().flatten() for p in net.parameters()])
        assert lengths[i] == len(flat)
        assert torch.equal(seq[i, : len(flat)], flat) and (seq[i, len(flat) :] == 0).all()


def test_tensor_statistics_match_torch(graphs):
    """Against a per-tensor loop with torch's own statistics; a tensor = the edges of one (layer index, edge type)."""
    stats = tensor_statistics(Batch.from_data_list(graphs), 24)
    q = torch.tensor([0.25, 0.5, 0.75])
    for i, g in enumerate(graphs):
        keep = g.edge_attr[:, 2] != 4
        v, layer, etype = g.edge_attr[keep, 0], g.edge_attr[keep, 1].long(), g.edge_attr[keep, 2].long()
        ref = []
        for lt in sorted(set(zip(layer.tolist(), etype.tolist()))):
            p = v[(layer == lt[0]) & (etype == lt[1])]
            ref.append(torch.cat([torch.stack([p.mean(), p.var(unbiased=False), p.min(), p.max()]), p.quantile(q)]))
        assert torch.allclose(stats[i, : len(ref)], torch.stack(ref), atol=1e-6)
        assert (stats[i, len(ref) :] == 0).all()
    # a weight and its bias, norm γ and β, W_q, W_k, W_v and b_q, b_k, b_v are separate: 16 + 4 tensors
    with pytest.raises(ValueError, match="has 20 parameter tensors but max_tensors=4; raise StatNNConfig.max_tensors"):
        tensor_statistics(graphs[2], 4)


def test_configs_are_json_and_inputs_checked(graphs):
    for cfg in (GMNConfig(), DMCConfig(), DeepSetsMetaConfig(), StatNNConfig()):
        assert type(cfg)(**json.loads(json.dumps(asdict(cfg)))) == cfg
    bad = graphs[0].clone()
    bad.edge_attr = bad.edge_attr[:, :3]
    with pytest.raises(ValueError, match=r"expected edge_attr of shape \[E, 6\] \(zoo.gmn.to_graph\), got \(\d+, 3\)"):
        GMN()(bad)
    with pytest.raises(ValueError, match="edge types must lie in"):
        GMN(GMNConfig(edge_types=3))(graphs[0])
    with pytest.raises(ValueError, match="expected an odd kernel_size"):
        DMCConfig(kernel_size=4)


def test_default_sizes_are_cpu_friendly():
    counts = {
        type(m).__name__: sum(p.numel() for p in m.parameters()) for m in (GMN(), DMC(), DeepSetsMeta(), StatNN())
    }
    assert all(1_000 < c < 200_000 for c in counts.values()), counts
