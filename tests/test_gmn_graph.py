"""GMN parameter graphs: counts against the schema, DAG and connectivity, the exact inverse, and the permutation
symmetry of every supported layer and block (the permuted network computes the same function, its graph is the same
graph relabelled, so the GMN's graph-level output is unchanged and its edge outputs move with the edges)."""

import copy

import pytest
import torch
from torch import nn

pytest.importorskip("torch_geometric")

from torch_geometric.data import Batch  # noqa: E402

from zoo.gmn import (  # noqa: E402
    EDGE_TYPES,
    NODE_TYPES,
    DeepSetsLayer,
    FFNBlock,
    GroupEquivariantLinear,
    ResidualBlock,
    TransformerBlock,
    from_graph,
    to_graph,
)
from zoo.models.gmn import GMN, GMNConfig  # noqa: E402


class SelfAttentionNet(nn.Sequential):
    """A user-written network: Linear → bare nn.MultiheadAttention (no residual) → Linear, on ``[B, T, d]``."""

    def __init__(self, d_in: int, d: int, heads: int, d_out: int) -> None:
        super().__init__(nn.Linear(d_in, d), nn.MultiheadAttention(d, heads, batch_first=True), nn.Linear(d, d_out))

    def forward(self, x):
        h = self[0](x)
        return self[2](self[1](h, h, h, need_weights=False)[0])


# -- permutations -----------------------------------------------------------------------------------------------------
def _random(n, gen):
    return torch.randperm(n, generator=gen)


def _blocks(size, swap=True):
    """A permutation of n = k·size that keeps blocks of ``size`` together: permutes within every block, and the
    blocks themselves when ``swap``. For heads (size = head dim), GroupNorm groups and conv groups."""

    def make(n, gen):
        k = n // size
        order = torch.randperm(k, generator=gen) if swap else torch.arange(k)
        return torch.cat([order[b] * size + torch.randperm(size, generator=gen) for b in range(k)])

    return make


@torch.no_grad()
def _apply(m: nn.Module, role: str, p: torch.Tensor) -> None:
    """Permute one side of a layer: ``out`` rows (weight, bias, running stats), ``in`` columns, ``in_flat`` columns
    of a Linear after Flatten of ``[C, m]``, ``ds_out`` / ``ds_in`` of a DeepSetsLayer, ``attn`` the attention neurons
    (rows of W_q, W_k, W_v and their biases, columns of out_proj), ``attn_in`` the columns of W_q, W_k, W_v."""
    if role == "out":
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(m, name, None)
            if t is not None:
                t.copy_(t[p])
    elif role == "in" and getattr(m, "groups", 1) > 1:  # p keeps the conv's input groups; each row sees its group
        per_in, per_out = m.in_channels // m.groups, m.out_channels // m.groups
        for gi in range(m.groups):
            rows = slice(gi * per_out, (gi + 1) * per_out)
            m.weight[rows] = m.weight[rows][:, p[gi * per_in : (gi + 1) * per_in] - gi * per_in]
    elif role == "in":
        m.weight.copy_(m.weight[:, p])
    elif role == "in_flat":
        w = m.weight.view(m.out_features, len(p), -1)
        m.weight.copy_(w[:, p].reshape(m.out_features, -1))
    elif role == "ds_out":
        _apply(m.lin1, "out", p)
        _apply(m.lin2, "out", p)
    elif role == "ds_in":
        _apply(m.lin1, "in", p)
        _apply(m.lin2, "in", p)
    elif role == "attn":
        d = m.embed_dim
        m.in_proj_weight.copy_(m.in_proj_weight.view(3, d, d)[:, p].reshape(3 * d, d))
        m.in_proj_bias.copy_(m.in_proj_bias.view(3, d)[:, p].reshape(-1))
        _apply(m.out_proj, "in", p)
    elif role == "attn_in":
        m.in_proj_weight.copy_(m.in_proj_weight[:, p])
    else:
        raise AssertionError(role)


# -- the cases: (network, input, hidden permutation groups, #nodes, #residual edges) ----------------------------------
def _case(name):
    g = torch.Generator().manual_seed(0)
    if name == "linear":
        net = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))
        groups = [(6, _random, [("0", "out"), ("2", "in")]), (5, _random, [("2", "out"), ("4", "in")])]
        return net, torch.randn(4, 3, generator=g), groups, 3 + 7 + 6 + 3, 0
    if name == "conv1d":
        net = nn.Sequential(
            nn.Conv1d(2, 5, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(5, 4, 3),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(4, 3),
        )
        groups = [(5, _random, [("0", "out"), ("2", "in")]), (4, _random, [("2", "out"), ("6", "in")])]
        return net, torch.randn(4, 2, 9, generator=g), groups, 2 + 6 + 5 + 4, 0
    if name == "conv2d_flatten":  # Linear over a flattened [C, H, W]: one edge per (channel, position, output)
        net = nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.GELU(), nn.Conv2d(4, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 2)
        )
        groups = [(4, _random, [("0", "out"), ("2", "in")]), (3, _random, [("2", "out"), ("5", "in_flat")])]
        return net, torch.randn(4, 1, 7, 7, generator=g), groups, 1 + 5 + 4 + 3, 0
    if name == "conv2d_groups":
        net = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 6, 3, padding=1, groups=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(6, 2),
        )
        groups = [
            (4, _blocks(2, False), [("0", "out"), ("2", "in")]),
            (6, _blocks(3, False), [("2", "out"), ("6", "in")]),
        ]
        return net, torch.randn(4, 2, 5, 5, generator=g), groups, 2 + 5 + 7 + 3, 0
    if name == "conv3d":
        net = nn.Sequential(nn.Conv3d(1, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8, 2))
        groups = [(3, _random, [("0", "out"), ("3", "in_flat")])]
        return net, torch.randn(4, 1, 3, 3, 3, generator=g), groups, 1 + 4 + 3, 0
    if name == "batchnorm1d":
        net = nn.Sequential(nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
        groups = [(6, _random, [("0", "out"), ("1", "out"), ("3", "in")])]
        return net, torch.randn(4, 3, generator=g), groups, 3 + 7 + 2 + 3, 0
    if name == "batchnorm2d":
        net = nn.Sequential(
            nn.Conv2d(2, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2)
        )
        groups = [(5, _random, [("0", "out"), ("1", "out"), ("5", "in")])]
        return net, torch.randn(4, 2, 5, 5, generator=g), groups, 2 + 6 + 2 + 3, 0
    if name == "layernorm":
        net = nn.Sequential(nn.Linear(3, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 2))
        groups = [(6, _random, [("0", "out"), ("1", "out"), ("3", "in")])]
        return net, torch.randn(4, 3, generator=g), groups, 3 + 7 + 2 + 3, 0
    if name == "groupnorm":  # GroupNorm(3, 6): channels may move within their group, groups may swap
        net = nn.Sequential(
            nn.Conv2d(2, 6, 3), nn.GroupNorm(3, 6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 2)
        )
        groups = [(6, _blocks(2), [("0", "out"), ("1", "out"), ("5", "in")])]
        return net, torch.randn(4, 2, 5, 5, generator=g), groups, 2 + 7 + 2 + 3, 0
    if name in ("instancenorm1d", "instancenorm2d"):
        conv, norm, pool = (
            (nn.Conv1d, nn.InstanceNorm1d, nn.AdaptiveAvgPool1d)
            if name.endswith("1d")
            else (nn.Conv2d, nn.InstanceNorm2d, nn.AdaptiveAvgPool2d)
        )
        net = nn.Sequential(conv(2, 5, 3), norm(5, affine=True), nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(5, 2))
        shape = (4, 2, 6) if name.endswith("1d") else (4, 2, 5, 5)
        groups = [(5, _random, [("0", "out"), ("1", "out"), ("5", "in")])]
        return net, torch.randn(*shape, generator=g), groups, 2 + 6 + 2 + 3, 0
    if name == "attention":  # heads of size 4: permute within heads and whole heads (the head structure is kept)
        net = SelfAttentionNet(3, 8, 2, 2)
        groups = [
            (8, _random, [("0", "out"), ("1", "attn_in")]),
            (8, _blocks(4), [("1", "attn")]),
            (8, _random, [("1.out_proj", "out"), ("2", "in")]),
        ]
        return net, torch.randn(4, 5, 3, generator=g), groups, 3 + 9 + 11 + 9 + 3, 0
    if name == "transformer":
        net = nn.Sequential(nn.Linear(3, 8), TransformerBlock(8, 2, 12), nn.LayerNorm(8), nn.Linear(8, 2))
        stream = [("0", "out"), ("1.norm1", "out"), ("1.attn", "attn_in"), ("1.attn.out_proj", "out")]
        stream += [("1.norm2", "out"), ("1.lin1", "in"), ("1.lin2", "out"), ("2", "out"), ("3", "in")]
        groups = [
            (8, _random, stream),
            (8, _blocks(4), [("1.attn", "attn")]),
            (12, _random, [("1.lin1", "out"), ("1.lin2", "in")]),
        ]
        return net, torch.randn(4, 5, 3, generator=g), groups, 3 + 9 + 2 + 11 + 9 + 2 + 13 + 9 + 2 + 3, 16
    if name == "residual":  # identity and projection shortcuts
        net = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1),
            nn.ReLU(),
            ResidualBlock(4, 4),
            ResidualBlock(4, 6, stride=2, activation="gelu"),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(6, 2),
        )
        stream4 = [("0", "out"), ("2.conv1", "in"), ("2.conv2", "out"), ("2.norm2", "out")]
        stream4 += [("3.conv1", "in"), ("3.shortcut.0", "in")]
        stream6 = [("3.conv2", "out"), ("3.norm2", "out"), ("3.shortcut.0", "out"), ("3.shortcut.1", "out")]
        stream6 += [("6", "in")]
        groups = [
            (4, _random, stream4),
            (4, _random, [("2.conv1", "out"), ("2.norm1", "out"), ("2.conv2", "in")]),
            (6, _random, [("3.conv1", "out"), ("3.norm1", "out"), ("3.conv2", "in")]),
            (6, _random, stream6),
        ]
        return net, torch.randn(4, 2, 6, 6, generator=g), groups, 2 + 5 + 12 + 24 + 3, 4 + 6
    if name == "ffn":
        net = nn.Sequential(nn.Linear(3, 6), FFNBlock(6, 10), nn.ReLU(), nn.Linear(6, 2))
        stream = [("0", "out"), ("1.lin1", "in"), ("1.lin2", "out"), ("3", "in")]
        groups = [(6, _random, stream), (10, _random, [("1.lin1", "out"), ("1.lin2", "in")])]
        return net, torch.randn(4, 3, generator=g), groups, 3 + 7 + 11 + 7 + 3, 6
    if name == "deepsets":
        net = nn.Sequential(DeepSetsLayer(3, 6), nn.ReLU(), DeepSetsLayer(6, 4), nn.ReLU(), DeepSetsLayer(4, 2))
        groups = [(6, _random, [("0", "ds_out"), ("2", "ds_in")]), (4, _random, [("2", "ds_out"), ("4", "ds_in")])]
        return net, torch.randn(4, 7, 3, generator=g), groups, 3 + 7 + 5 + 3, 0
    if name == "group":
        net = nn.Sequential(
            GroupEquivariantLinear(2, 5, 4),
            nn.ReLU(),
            GroupEquivariantLinear(5, 3, 4),
            nn.SiLU(),
            GroupEquivariantLinear(3, 1, 4),
        )
        groups = [(5, _random, [("0", "out"), ("2", "in")]), (3, _random, [("2", "out"), ("4", "in")])]
        return net, torch.randn(4, 2, 4, generator=g), groups, 2 + 6 + 4 + 2, 0
    raise AssertionError(name)


CASES = [
    "linear",
    "conv1d",
    "conv2d_flatten",
    "conv2d_groups",
    "conv3d",
    "batchnorm1d",
    "batchnorm2d",
    "layernorm",
    "groupnorm",
    "instancenorm1d",
    "instancenorm2d",
    "attention",
    "transformer",
    "residual",
    "ffn",
    "deepsets",
    "group",
]


def _build(name, seed=0):
    """The case's network in float64 eval mode, with random norm affines and running statistics."""
    torch.manual_seed(seed)
    net, inp, groups, nodes, residual = _case(name)
    net = net.double().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_()
                if getattr(m, "running_mean", None) is not None:
                    m.running_mean.normal_()
                    m.running_var.uniform_(0.5, 2)
    return net, inp.double(), groups, nodes, residual


def _permuted(net, groups, seed=1):
    gen = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(net)
    for n, make, members in groups:
        p = make(n, gen)
        assert sorted(p.tolist()) == list(range(n)) and not torch.equal(p, torch.arange(n))
        for path, role in members:
            _apply(out.get_submodule(path), role, p)
    return out


def _is_dag(edge_index, n):
    indeg = torch.bincount(edge_index[1], minlength=n)
    alive = torch.ones(n, dtype=torch.bool)
    while alive.any():
        roots = alive & (indeg == 0)
        if not roots.any():
            return False
        alive &= ~roots
        leaving = roots[edge_index[0]]
        indeg -= torch.bincount(edge_index[1][leaving], minlength=n)
        edge_index = edge_index[:, ~leaving]
    return True


def _weakly_connected(edge_index, n):
    label = torch.arange(n)
    both = torch.cat([edge_index, edge_index.flip(0)], 1)
    while True:
        new = label.scatter_reduce(0, both[1], label[both[0]], "amin")
        if torch.equal(new, label):
            return bool((label == 0).all())
        label = new


# -- construction -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_counts_dag_connected(name):
    net, _, _, nodes, residual = _build(name)
    g = to_graph(net)
    n_params = sum(p.numel() for p in net.parameters())
    types = g.edge_attr[:, 2].long()
    assert g.edge_index.shape[1] == n_params + residual
    assert int((types == EDGE_TYPES["residual"]).sum()) == residual
    assert g.num_nodes == g.x.shape[0] == nodes
    assert (g.edge_param >= 0).sum() == n_params and (g.edge_param[types == EDGE_TYPES["residual"]] == -1).all()
    assert _is_dag(g.edge_index, g.num_nodes)
    assert _weakly_connected(g.edge_index, g.num_nodes)
    # neuron order on the input neurons (layer 0) and the output neurons (the sinks) only, 0…n−1 each
    sinks = torch.bincount(g.edge_index[0], minlength=g.num_nodes) == 0
    inputs = g.x[:, 0] == 0
    assert torch.equal(g.x[:, 1] >= 0, inputs | sinks)
    assert g.x[inputs, 1].tolist() == list(range(int(inputs.sum())))
    assert g.x[sinks, 1].tolist() == list(range(int(sinks.sum())))
    assert g.edge_attr.dtype == torch.float64  # float64 network → float64 values, exact


def test_schema_of_a_small_mlp():
    """Node and edge features of Linear(2, 3) → ReLU → Linear(3, 1), spelled out."""
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    g = to_graph(net)
    neuron, bias = NODE_TYPES["neuron"], NODE_TYPES["linear_bias"]
    expected_x = (
        [[0, 0, neuron], [0, 1, neuron]] + [[1, -1, neuron]] * 3 + [[1, -1, bias], [2, 0, neuron], [2, -1, bias]]
    )
    assert g.x.tolist() == expected_x
    w1, b1, w2, b2 = (p.detach() for p in net.parameters())
    # W1[o, i]: input i → hidden o, in row-major order of W1; then b1; then W2, b2
    assert g.edge_index[:, :6].tolist() == [[0, 1, 0, 1, 0, 1], [2, 2, 3, 3, 4, 4]]
    assert g.edge_index[:, 6:9].tolist() == [[5, 5, 5], [2, 3, 4]]
    assert g.edge_index[:, 9:].tolist() == [[2, 3, 4, 7], [6, 6, 6, 6]]
    assert torch.equal(g.edge_attr[:, 0], torch.cat([w1.flatten(), b1, w2.flatten(), b2]))
    assert g.edge_attr[:, 1].tolist() == [1] * 9 + [2] * 4
    assert g.edge_attr[:, 2].tolist() == [0] * 6 + [1] * 3 + [0] * 3 + [1]
    assert (g.edge_attr[:, 3:] == -1).all()
    assert g.act.tolist() == [0, 0, 1, 1, 1, 0, 0, 0]  # ReLU on the hidden neurons
    assert g.param_names == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_conv_kernel_positions():
    conv = nn.Conv2d(2, 3, (2, 3))
    g = to_graph(nn.Sequential(conv))
    w = g.edge_attr[g.edge_attr[:, 2] == EDGE_TYPES["conv"]]
    assert len(w) == 2 * 3 * 6
    pos = w[:, 3:].long()
    kh, kw = torch.meshgrid(torch.arange(2), torch.arange(3), indexing="ij")
    assert torch.equal(pos[:6, :2], torch.stack([kh.flatten(), kw.flatten()], 1)) and (pos[:, 2] == -1).all()
    # every (in, out) channel pair carries the 6 kernel elements as parallel edges
    pairs = g.edge_index[:, g.edge_attr[:, 2] == EDGE_TYPES["conv"]]
    assert torch.unique(pairs, dim=1, return_counts=True)[1].tolist() == [6] * 6
    # the kernel element sits at its (kh, kw)
    assert torch.equal(w[:, 0].view(3, 2, 2, 3), conv.weight.detach())


# -- inverse ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_round_trip_exact(name):
    net, inp, _, _, _ = _build(name, seed=0)
    fresh, _, _, _, _ = _build(name, seed=1)
    fresh.load_state_dict(
        {k: v for k, v in net.state_dict().items() if k not in dict(net.named_parameters())}, strict=False
    )
    g = to_graph(net)
    assert any(not torch.equal(a, b) for a, b in zip(net.parameters(), fresh.parameters()))
    assert from_graph(g, fresh) is fresh
    for (n, a), b in zip(net.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), n
    assert torch.equal(net(inp), fresh(inp))
    g2 = to_graph(fresh)
    for key in ("x", "edge_index", "edge_attr", "edge_param", "edge_flat", "act"):
        assert torch.equal(g[key], g2[key]), key


def test_round_trip_float32_and_edge_values():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 2))
    g = to_graph(net)
    assert g.edge_attr.dtype == torch.float32
    fresh = copy.deepcopy(net)
    for p in fresh.parameters():
        nn.init.normal_(p)
    from_graph(g, fresh, values=2 * g.edge_attr[:, :1])  # [E, 1] edge outputs, e.g. of a metanetwork
    for a, b in zip(net.parameters(), fresh.parameters()):
        assert torch.equal(2 * a, b)


def test_from_graph_rejects_other_architectures():
    g = to_graph(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match=r"shape mismatches \['0.weight: graph \(4, 3\) vs module \(5, 3\)'"):
        from_graph(g, nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)))
    with pytest.raises(ValueError, match=r"not in the graph \['3.bias', '3.weight'\]"):
        from_graph(g, nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match=r"expected values of shape \[26\] or \[26, 1\]"):
        from_graph(g, nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), values=torch.zeros(5))
    with pytest.raises(ValueError, match="got a batch of 2; use batch.get_example"):
        from_graph(Batch.from_data_list([g, g]), nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))


# -- errors and user networks -----------------------------------------------------------------------------------------
def test_unsupported_layer_is_named():
    net = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Embedding(5, 4)))
    with pytest.raises(TypeError, match=r"does not support Embedding \(1\.1\).*supported: nn\.Linear"):
        to_graph(net)

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

    with pytest.raises(TypeError, match=r"does not support Custom \(2\)"):
        to_graph(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), Custom()))
    with pytest.raises(TypeError, match=r"does not support LSTM \(the root module\)"):
        to_graph(nn.LSTM(2, 3))


def test_inconsistent_widths_and_shared_weights():
    with pytest.raises(ValueError, match=r"Linear 1 expects 5 input features, but the preceding layer gives 4"):
        to_graph(nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)))
    with pytest.raises(ValueError, match=r"1 expects 6 input channels, but the preceding layer gives 4"):
        to_graph(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(6, 2, 3)))
    lin = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="weight sharing is not supported"):
        to_graph(nn.Sequential(nn.Linear(3, 4), lin, nn.Sequential(lin)))
    with pytest.raises(TypeError, match="LayerNorm over the last axis only"):
        to_graph(nn.Sequential(nn.Conv2d(1, 2, 3), nn.LayerNorm([2, 3, 3])))


def test_user_written_network():
    """A user's own nn.Sequential subclass made of supported layers and blocks: a small ResNet-ViT hybrid."""

    class Hybrid(nn.Sequential):
        def __init__(self):
            stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.SiLU())
            super().__init__(stem, ResidualBlock(4, 6, stride=2, norm="gn"), nn.Flatten(2))
            self.tokens = nn.Sequential(TransformerBlock(6, heads=3, hidden=8), nn.LayerNorm(6))
            self.head = nn.Linear(6 * 9, 3)  # reads the flattened [T=9, d=6] tokens

        def forward(self, x):
            h = self[2](self[1](self[0](x))).transpose(1, 2)  # [B, C, H·W] → [B, T, d]
            return self.head(self.tokens(h).flatten(1))

    torch.manual_seed(0)
    net = Hybrid().double().eval()
    x = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    y = net(x)
    g = to_graph(net)
    n_params = sum(p.numel() for p in net.parameters())
    assert g.edge_index.shape[1] == n_params + 6 + 6 + 6  # projection shortcut + two transformer residuals
    assert _is_dag(g.edge_index, g.num_nodes) and _weakly_connected(g.edge_index, g.num_nodes)
    fresh = Hybrid().double().eval()
    from_graph(g, fresh)
    assert torch.equal(fresh(x), y)
    assert to_graph([nn.Linear(2, 3), nn.Linear(3, 1)]).edge_index.shape[1] == 13  # a plain list of modules


def test_group_equivariant_linear_is_shift_equivariant():
    torch.manual_seed(0)
    layer = GroupEquivariantLinear(3, 2, 5).double()
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    assert torch.allclose(layer(torch.roll(x, 2, -1)), torch.roll(layer(x), 2, -1), atol=1e-12)
    dense = torch.stack([layer.weight[..., (g - torch.arange(5)) % 5] for g in range(5)], 2)  # [o, i, g, j]
    assert torch.allclose(layer(x), torch.einsum("oigj,bij->bog", dense, x) + layer.bias[:, None], atol=1e-12)


# -- symmetry ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gmns():
    torch.manual_seed(0)
    cfgs = [
        GMNConfig(hidden=16, layers=3, zero_init=False, activation_embedding=True),
        GMNConfig(16, 2, undirected=True),
    ]
    models = [GMN(c).double().eval() for c in cfgs]
    for m in models[1:]:  # zero-initialised blocks would hide the message passing: perturb them
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return models


def _edge_ids(net, groups):
    """For each parameter edge of the permuted network's graph, the edge of the original graph it came from."""
    ids = copy.deepcopy(net)
    offset = 0
    with torch.no_grad():
        for p in ids.parameters():
            p.copy_(torch.arange(offset, offset + p.numel(), dtype=p.dtype).view_as(p))
            offset += p.numel()
    g = to_graph(_permuted(ids, groups))
    keep = g.edge_param >= 0
    return keep, g.edge_attr[keep, 0].long()


@pytest.mark.parametrize("name", CASES)
def test_hidden_permutation_invariance(name, gmns):
    net, inp, groups, _, _ = _build(name)
    perm = _permuted(net, groups)
    # (a) the permutation is a symmetry of the network
    assert torch.allclose(net(inp), perm(inp), atol=1e-10, rtol=1e-10)
    g, gp = to_graph(net), to_graph(perm)
    assert not torch.equal(g.edge_attr, gp.edge_attr)  # the graph did change
    # (b) the GMN's prediction does not
    with torch.no_grad():
        for gmn in gmns:
            assert torch.allclose(gmn(g), gmn(gp), atol=1e-10, rtol=1e-9)
        # (c) edge outputs move with the edges: edge k of the permuted graph holds the parameter of edge src[k]
        keep, src = _edge_ids(net, groups)
        orig_pos = torch.empty(int((g.edge_param >= 0).sum()), dtype=torch.long)
        flat_offset = torch.tensor([0] + [p.numel() for p in net.parameters()]).cumsum(0)
        orig_pos[flat_offset[g.edge_param[g.edge_param >= 0]] + g.edge_flat[g.edge_param >= 0]] = torch.arange(
            len(orig_pos)
        )
        e, ep = gmns[0].edge_features(g)[g.edge_param >= 0], gmns[0].edge_features(gp)[keep]
        assert torch.allclose(ep, e[orig_pos[src]], atol=1e-10, rtol=1e-9)


def test_non_symmetries_change_the_prediction(gmns):
    """Permuting the input neurons (they carry their order), or the rows of one layer without the columns of the next,
    is no symmetry: the prediction moves, by orders of magnitude more than under a true symmetry (float64 noise)."""
    net, _, groups, _, _ = _build("linear")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for gmn in gmns:
            base = gmn(to_graph(net))
            noise = (gmn(to_graph(_permuted(net, groups))) - base).abs().item()
            inputs = copy.deepcopy(net)
            _apply(inputs[0], "in", torch.tensor([2, 0, 1]))
            one_side = copy.deepcopy(net)
            _apply(one_side[0], "out", _random(6, gen))
            for other in (inputs, one_side):
                assert (gmn(to_graph(other)) - base).abs().item() > 1e3 * noise + 1e-12
