r"""Graph Metanetworks (GMN) and the baseline metanetworks DMC, DeepSets and StatNN.

Paper: Derek Lim, Haggai Maron, Marc T. Law, Jonathan Lorraine, James Lucas, "Graph Metanetworks for Processing
Diverse Neural Architectures", ICLR 2024, arXiv:2312.04501. Upstream code: https://github.com/cptq/graph_metanetworks,
whose LICENSE (NVIDIA proprietary) forbids use, so this file is an independent implementation from the paper (MIT,
as the zoo). Baselines: DMC (Eilertsen et al. 2020, "Classifying the classifier: dissecting the weight space of
neural networks"), DeepSets (Zaheer et al. 2017) over the parameter set, StatNN (Unterthiner et al. 2020,
"Predicting Neural Network Accuracy from Weights").

Every metanetwork reads a parameter graph made by ``zoo.gmn.to_graph`` (a ``torch_geometric.data.Data``, or a
``Batch`` of them) and returns one scalar per graph, ``forward(data) -> [num_graphs]`` (a logit: the accuracy
prediction task applies a sigmoid). Only torch is imported here; the graphs come from torch_geometric.

* ``GMN``: feature encoders, an edge-updating message-passing network of pre-LayerNorm residual blocks, and a readout
  that averages per-edge features over each graph. Permuting hidden neurons of the input network permutes the nodes
  and edges of its graph, which leaves the output unchanged.
* ``DMC``: a 1D CNN over each network's flattened parameter vector (edge values in edge order, residual edges left
  out), with a DeepSets (masked mean) readout over the remaining positions.
* ``DeepSetsMeta``: DeepSets over the set of (value, layer index, edge type) of all edges.
* ``StatNN``: an MLP over 7 statistics (mean, variance, min, max, q25, q50, q75) of each parameter tensor.

``MetanetConfig`` names one of the four (``model``) with its config's keyword arguments (``options``);
``build_metanet(config)`` builds it. The family ``gmn`` trains them with ``zoo.methods.gmn.GMNModule`` on the network
zoo of ``zoo.data.netzoo.NetZooDataModule``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.gmn.graph import EDGE_TYPES, NUM_ACTIVATIONS, NUM_EDGE_TYPES, NUM_NODE_TYPES

if TYPE_CHECKING:
    from torch_geometric.data import Batch, Data

__all__ = [
    "GMNConfig",
    "GMN",
    "EdgeMPNNBlock",
    "DMCConfig",
    "DMC",
    "DeepSetsMetaConfig",
    "DeepSetsMeta",
    "StatNNConfig",
    "StatNN",
    "scatter_mean",
    "graph_vectors",
    "parameter_sequences",
    "tensor_statistics",
    "METANETS",
    "MetanetConfig",
    "build_metanet",
]

_RESIDUAL = EDGE_TYPES["residual"]


# -- helpers ----------------------------------------------------------------------------------------------------------
def scatter_mean(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Mean of the rows of ``src`` ``[M, d]`` that share an ``index`` ``[M]`` → ``[size, d]`` (0 for empty groups)."""
    out = src.new_zeros(size, src.shape[1]).index_add_(0, index, src)
    count = torch.bincount(index, minlength=size).clamp_min(1).to(src.dtype)
    return out / count[:, None]


def graph_vectors(data: Data | Batch) -> tuple[Tensor, Tensor, int]:
    """Node batch vector ``[N]``, edge batch vector ``[E]`` (the graph of each edge's source) and the graph count.

    Args:
        data: a ``Data`` (one graph) or a ``Batch`` of parameter graphs.
    """
    if data.x is None or data.x.dim() != 2 or data.x.shape[1] != 3:
        shape = None if data.x is None else tuple(data.x.shape)
        raise ValueError(f"expected node features x of shape [N, 3] (zoo.gmn.to_graph), got {shape}")
    if data.edge_attr is None or data.edge_attr.dim() != 2 or data.edge_attr.shape[1] != 6:
        shape = None if data.edge_attr is None else tuple(data.edge_attr.shape)
        raise ValueError(f"expected edge_attr of shape [E, 6] (zoo.gmn.to_graph), got {shape}")
    batch = getattr(data, "batch", None)
    if batch is None:
        batch, num_graphs = torch.zeros(data.x.shape[0], dtype=torch.long, device=data.x.device), 1
    else:
        num_graphs = int(data.num_graphs)
    return batch, batch[data.edge_index[0]], num_graphs


class _SinLinear(nn.Module):
    """sin(W x + b): ``[M, k]`` → ``[M, h]``."""

    def __init__(self, k: int, h: int) -> None:
        super().__init__()
        self.lin = nn.Linear(k, h)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.lin(x))


def _mlp(k: int, h: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(k, h), nn.SiLU(), nn.Linear(h, out))


# -- GMN --------------------------------------------------------------------------------------------------------------
@dataclass
class GMNConfig:
    """Architecture of a GMN; every value is JSON-able.

    Args:
        hidden: width h of node and edge features.
        layers: message-passing blocks L ≥ 1; the last one updates edges only.
        readout_hidden: width of the readout; 0 means ``hidden``.
        zero_init: zero the last Linear of every update, so that each block starts as the identity.
        undirected: add every edge reversed (same features) before message passing.
        activation_embedding: add an Embedding of the neuron's activation (``Data.act``) to the node encoder (an
            extension: the paper does not encode activations).
        node_types: size of the node-type embedding (``zoo.gmn.NUM_NODE_TYPES``).
        edge_types: size of the edge-type embedding (``zoo.gmn.NUM_EDGE_TYPES``).
    """

    hidden: int = 32
    layers: int = 4
    readout_hidden: int = 0
    zero_init: bool = True
    undirected: bool = False
    activation_embedding: bool = False
    node_types: int = NUM_NODE_TYPES
    edge_types: int = NUM_EDGE_TYPES

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.layers < 1:
            raise ValueError(f"expected hidden >= 1 and layers >= 1, got hidden={self.hidden}, layers={self.layers}")

    def to_dict(self) -> dict:
        return asdict(self)


class EdgeMPNNBlock(nn.Module):
    r"""Pre-LayerNorm residual block of an edge-updating message-passing network.

    With x̂ = LN(x), ê = LN(e) and an edge s → t:

    * e_st ← e_st + W_e SiLU(MLP_e([x̂_s, x̂_t, ê_st]))
    * m_t = mean_{s → t} MLP_m([x̂_s, e_st])  (with the updated e)
    * x_t ← x_t + W_x SiLU(MLP_x([x̂_t, m_t]))  (skipped when ``update_nodes=False``)

    MLP = Linear → SiLU → Linear, width h. ``zero_init`` sets W_e, W_x (and their biases) to 0: the block is then
    the identity.

    Args:
        hidden: h; x ``[N, h]``, e ``[E, h]``.
        update_nodes: update x (every block but the last).
        zero_init: start as the identity.
    """

    def __init__(self, hidden: int, update_nodes: bool = True, zero_init: bool = True) -> None:
        super().__init__()
        h = hidden
        self.update_nodes = update_nodes
        self.norm_x = nn.LayerNorm(h)
        self.norm_e = nn.LayerNorm(h)
        self.edge_mlp = _mlp(3 * h, h, h)
        self.edge_out = nn.Linear(h, h)
        outs = [self.edge_out]
        if update_nodes:
            self.message_mlp = _mlp(2 * h, h, h)
            self.node_mlp = _mlp(2 * h, h, h)
            self.node_out = nn.Linear(h, h)
            outs.append(self.node_out)
        if zero_init:
            for lin in outs:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)

    def forward(self, x: Tensor, e: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """``x [N, h]``, ``e [E, h]``, ``edge_index [2, E]`` → updated ``(x, e)``."""
        src, dst = edge_index
        xn, en = self.norm_x(x), self.norm_e(e)
        e = e + self.edge_out(F.silu(self.edge_mlp(torch.cat([xn[src], xn[dst], en], 1))))
        if not self.update_nodes:
            return x, e
        agg = scatter_mean(self.message_mlp(torch.cat([xn[src], e], 1)), dst, x.shape[0])
        return x + self.node_out(F.silu(self.node_mlp(torch.cat([xn, agg], 1)))), e


class GMN(nn.Module):
    r"""Graph metanetwork: parameter graph → one logit per graph.

    Encoders (σ = sin): node h_v = Lin([σ(Lin(layer)), σ(Lin(order)), Emb(type) (, Emb(act))]);
    edge h_e = Lin([σ(Lin(value)), σ(Lin(layer)), Emb(type), σ(Lin(position[3]))]). Then L ``EdgeMPNNBlock`` s (the
    last updates edges only), LayerNorm + Linear on the edges, and the readout
    y_G = MLP(mean_{e ∈ G} ReLU(Lin(e))) ``[num_graphs]``.

    Args:
        config: the architecture.
    """

    def __init__(self, config: GMNConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or GMNConfig()
        h, r = c.hidden, c.readout_hidden or c.hidden
        self.node_layer = _SinLinear(1, h)
        self.node_order = _SinLinear(1, h)
        self.node_type = nn.Embedding(c.node_types, h)
        self.node_act = nn.Embedding(NUM_ACTIVATIONS, h) if c.activation_embedding else None
        self.node_proj = nn.Linear((4 if c.activation_embedding else 3) * h, h)
        self.edge_value = _SinLinear(1, h)
        self.edge_layer = _SinLinear(1, h)
        self.edge_type = nn.Embedding(c.edge_types, h)
        self.edge_pos = _SinLinear(3, h)
        self.edge_proj = nn.Linear(4 * h, h)
        self.blocks = nn.ModuleList(EdgeMPNNBlock(h, i < c.layers - 1, c.zero_init) for i in range(c.layers))
        self.edge_norm = nn.LayerNorm(h)
        self.edge_head = nn.Linear(h, h)
        self.readout_edge = nn.Linear(h, r)
        self.readout_mlp = nn.Sequential(nn.Linear(r, r), nn.ReLU(), nn.Linear(r, 1))

    def embed(self, data: Data | Batch) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """Encoded ``x [N, h]``, ``e [E', h]``, ``edge_index [2, E']``, edge batch ``[E']``, number of graphs.

        E' = 2E with ``undirected`` (the reversed edges follow the originals), else E.
        """
        c = self.config
        _, edge_batch, num_graphs = graph_vectors(data)
        dtype = self.node_proj.weight.dtype
        x, ea = data.x, data.edge_attr
        ntype, etype = x[:, 2].long(), ea[:, 2].long()
        if len(ntype) and not (0 <= int(ntype.min()) and int(ntype.max()) < c.node_types):
            raise ValueError(f"node types must lie in [0, {c.node_types}), got {int(ntype.min())}…{int(ntype.max())}")
        if len(etype) and not (0 <= int(etype.min()) and int(etype.max()) < c.edge_types):
            raise ValueError(f"edge types must lie in [0, {c.edge_types}), got {int(etype.min())}…{int(etype.max())}")
        xf, ef = x.to(dtype), ea.to(dtype)
        parts = [self.node_layer(xf[:, :1]), self.node_order(xf[:, 1:2]), self.node_type(ntype)]
        if self.node_act is not None:
            act = getattr(data, "act", None)
            if act is None:
                raise ValueError("activation_embedding=True needs Data.act (graphs from zoo.gmn.to_graph)")
            parts.append(self.node_act(act))
        h_x = self.node_proj(torch.cat(parts, 1))
        h_e = self.edge_proj(
            torch.cat(
                [
                    self.edge_value(ef[:, :1]),
                    self.edge_layer(ef[:, 1:2]),
                    self.edge_type(etype),
                    self.edge_pos(ef[:, 3:]),
                ],
                1,
            )
        )
        edge_index = data.edge_index
        if c.undirected:
            edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
            h_e, edge_batch = torch.cat([h_e, h_e]), torch.cat([edge_batch, edge_batch])
        return h_x, h_e, edge_index, edge_batch, num_graphs

    def propagate(self, x: Tensor, e: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """The message-passing blocks: ``(x [N, h], e [E, h])`` → ``(x, e)``; the identity under ``zero_init``."""
        for block in self.blocks:
            x, e = block(x, e, edge_index)
        return x, e

    def edge_features(self, data: Data | Batch) -> Tensor:
        """Per-edge outputs ``[E, h]`` after LayerNorm + Linear (reversed edges of ``undirected`` dropped)."""
        x, e, edge_index, _, _ = self.embed(data)
        _, e = self.propagate(x, e, edge_index)
        return self.edge_head(self.edge_norm(e[: data.edge_index.shape[1]]))

    def forward(self, data: Data | Batch) -> Tensor:
        """Logits ``[num_graphs]`` of a ``Data`` or ``Batch`` of parameter graphs."""
        x, e, edge_index, edge_batch, num_graphs = self.embed(data)
        _, e = self.propagate(x, e, edge_index)
        e = self.edge_head(self.edge_norm(e))
        pooled = scatter_mean(F.relu(self.readout_edge(e)), edge_batch, num_graphs)  # [B, r]
        return self.readout_mlp(pooled)[:, 0]


# -- DMC --------------------------------------------------------------------------------------------------------------
def parameter_sequences(data: Data | Batch) -> tuple[Tensor, Tensor]:
    """Each graph's parameter values in edge order, zero-padded: ``[B, L_max]`` and the lengths ``[B]``.

    Residual edges (type 4, no parameter) are left out.
    """
    _, edge_batch, num_graphs = graph_vectors(data)
    keep = data.edge_attr[:, 2] != _RESIDUAL
    values, edge_batch = data.edge_attr[keep, 0], edge_batch[keep]
    lengths = torch.bincount(edge_batch, minlength=num_graphs)
    pos = torch.arange(len(values), device=values.device) - (lengths.cumsum(0) - lengths)[edge_batch]
    dense = values.new_zeros(num_graphs, int(lengths.max()) if len(values) else 1)
    dense[edge_batch, pos] = values
    return dense, lengths


@dataclass
class DMCConfig:
    """Architecture of the DMC baseline; every value is JSON-able.

    Args:
        hidden: the largest channel count and the readout width.
        layers: conv blocks (paper: 10).
        channels: channels of the first conv; doubled per block up to ``hidden``.
        kernel_size: conv kernel (odd; paper: 5).
    """

    hidden: int = 32
    layers: int = 10
    channels: int = 8
    kernel_size: int = 5

    def __post_init__(self) -> None:
        if self.kernel_size % 2 == 0:
            raise ValueError(f"expected an odd kernel_size, got {self.kernel_size}")

    def to_dict(self) -> dict:
        return asdict(self)


class DMC(nn.Module):
    r"""DMC baseline: 1D CNN over the flattened parameter vector θ ``[B, 1, L]``, then a DeepSets readout.

    Block i: h ← MaxPool₂(ReLU(BN(Conv1d_k(h)))) with channels min(hidden, channels·2ⁱ); positions past a
    network's length are zeroed after each block and the pooling rounds up (ceil), so a padded network gives the
    same output as alone in eval mode (in training, padding enters the BatchNorm statistics). Readout:
    y = MLP(mean over valid positions of ReLU(Lin(h))).

    Args:
        config: the architecture.
    """

    def __init__(self, config: DMCConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or DMCConfig()
        chans = [1] + [min(c.hidden, c.channels * 2**i) for i in range(c.layers)]
        self.convs = nn.ModuleList(
            nn.Conv1d(a, b, c.kernel_size, padding=c.kernel_size // 2) for a, b in zip(chans, chans[1:])
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in chans[1:])
        self.phi = nn.Linear(chans[-1], c.hidden)
        self.rho = nn.Sequential(nn.Linear(c.hidden, c.hidden), nn.ReLU(), nn.Linear(c.hidden, 1))

    def forward(self, data: Data | Batch) -> Tensor:
        """Logits ``[num_graphs]``."""
        dtype = self.phi.weight.dtype
        seq, lengths = parameter_sequences(data)
        h = seq.to(dtype)[:, None]  # [B, 1, L]
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h)))
            h = h * (torch.arange(h.shape[2], device=h.device) < lengths[:, None])[:, None]
            h = F.max_pool1d(h, 2, ceil_mode=True)
            lengths = (lengths + 1) // 2
        mask = (torch.arange(h.shape[2], device=h.device) < lengths[:, None]).to(dtype)  # [B, L']
        feats = F.relu(self.phi(h.transpose(1, 2)))  # [B, L', hidden]
        pooled = (feats * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return self.rho(pooled)[:, 0]


# -- DeepSets ---------------------------------------------------------------------------------------------------------
@dataclass
class DeepSetsMetaConfig:
    """Architecture of the DeepSets baseline; every value is JSON-able.

    Args:
        hidden: width of φ and ρ.
        edge_types: size of the edge-type embedding.
    """

    hidden: int = 64
    edge_types: int = NUM_EDGE_TYPES

    def to_dict(self) -> dict:
        return asdict(self)


class DeepSetsMeta(nn.Module):
    r"""DeepSets over the edges: y_G = ρ(mean_{e ∈ G} φ(value_e, layer_e, type_e)).

    φ = ReLU(Lin(ReLU(Lin([value, layer]) + Emb(type)))), ρ = Lin(ReLU(Lin(·))). All edges take part, residual
    edges (type 4, value 1) included.

    Args:
        config: the architecture.
    """

    def __init__(self, config: DeepSetsMetaConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or DeepSetsMetaConfig()
        self.inp = nn.Linear(2, c.hidden)
        self.type_emb = nn.Embedding(c.edge_types, c.hidden)
        self.phi = nn.Linear(c.hidden, c.hidden)
        self.rho = nn.Sequential(nn.Linear(c.hidden, c.hidden), nn.ReLU(), nn.Linear(c.hidden, 1))

    def forward(self, data: Data | Batch) -> Tensor:
        """Logits ``[num_graphs]``."""
        _, edge_batch, num_graphs = graph_vectors(data)
        ea = data.edge_attr.to(self.inp.weight.dtype)
        h = F.relu(self.inp(ea[:, :2]) + self.type_emb(ea[:, 2].long()))
        return self.rho(scatter_mean(F.relu(self.phi(h)), edge_batch, num_graphs))[:, 0]


# -- StatNN -----------------------------------------------------------------------------------------------------------
def tensor_statistics(data: Data | Batch, max_tensors: int, dtype: torch.dtype | None = None) -> Tensor:
    """Mean, variance, min, max, q25, q50, q75 of each parameter tensor of each graph: ``[B, max_tensors, 7]``.

    A "tensor" is the group of a graph's edges that share (layer index, edge type), residual edges left out: a
    weight, its bias, a norm's γ and β, and the attention's W_q, W_k, W_v are separate groups; the groups of a graph
    are ordered by (layer, type) and zero-padded to ``max_tensors``. Variance is the population variance; quantiles
    interpolate linearly (as ``torch.quantile``).

    Args:
        data: a ``Data`` or ``Batch`` of parameter graphs.
        max_tensors: T, the number of groups per graph in the output.
        dtype: compute in this dtype (default: the graph's).

    Raises:
        ValueError: a graph with more than ``max_tensors`` groups.
    """
    _, edge_batch, num_graphs = graph_vectors(data)
    ea = data.edge_attr
    keep = ea[:, 2] != _RESIDUAL
    v, eb = ea[keep, 0].to(dtype or ea.dtype), edge_batch[keep]
    layer, etype = ea[keep, 1].long(), ea[keep, 2].long()
    n_layer, n_type = int(layer.max()) + 1 if len(v) else 1, int(etype.max()) + 1 if len(v) else 1
    key = (eb * n_layer + layer) * n_type + etype
    keys, group, counts = torch.unique(key, return_inverse=True, return_counts=True)
    order = torch.argsort(v, stable=True)
    order = order[torch.argsort(group[order], stable=True)]  # sorted by group, then by value
    sv = v[order]
    start = counts.cumsum(0) - counts
    mean = scatter_mean(v[:, None], group, len(keys))[:, 0]
    var = scatter_mean(((v - mean[group]) ** 2)[:, None], group, len(keys))[:, 0]

    def quantile(q: float) -> Tensor:
        pos = q * (counts - 1).to(v.dtype)
        lo = pos.floor().long()
        hi = pos.ceil().long()
        frac = pos - lo.to(v.dtype)
        return sv[start + lo] * (1 - frac) + sv[start + hi] * frac

    stats = torch.stack(
        [mean, var, sv[start], sv[start + counts - 1], quantile(0.25), quantile(0.5), quantile(0.75)], 1
    )
    graph = keys // (n_layer * n_type)
    per_graph = torch.bincount(graph, minlength=num_graphs)
    rank = torch.arange(len(keys), device=v.device) - (per_graph.cumsum(0) - per_graph)[graph]
    if len(keys) and int(per_graph.max()) > max_tensors:
        raise ValueError(
            f"a graph has {int(per_graph.max())} parameter tensors but max_tensors={max_tensors}; "
            "raise StatNNConfig.max_tensors"
        )
    out = v.new_zeros(num_graphs, max_tensors, 7)
    out[graph, rank] = stats
    return out


@dataclass
class StatNNConfig:
    """Architecture of the StatNN baseline; every value is JSON-able.

    Args:
        hidden: MLP width.
        max_tensors: the most parameter tensors a network may have (statistics are zero-padded to it).
        layers: hidden layers of the MLP.
    """

    hidden: int = 64
    max_tensors: int = 32
    layers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


class StatNN(nn.Module):
    r"""StatNN baseline: y = MLP(flatten(tensor_statistics(θ))), input ``[B, 7 · max_tensors]``.

    Args:
        config: the architecture.
    """

    def __init__(self, config: StatNNConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or StatNNConfig()
        dims = [7 * c.max_tensors] + [c.hidden] * c.layers
        layers: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], 1))

    def forward(self, data: Data | Batch) -> Tensor:
        """Logits ``[num_graphs]``."""
        stats = tensor_statistics(data, self.config.max_tensors, self.mlp[0].weight.dtype)
        return self.mlp(stats.flatten(1))[:, 0]


# -- builders ---------------------------------------------------------------------------------------------------------
METANETS: dict[str, tuple[type, type]] = {
    "gmn": (GMN, GMNConfig),
    "dmc": (DMC, DMCConfig),
    "deepsets": (DeepSetsMeta, DeepSetsMetaConfig),
    "statnn": (StatNN, StatNNConfig),
}


@dataclass
class MetanetConfig:
    """Which metanetwork to build and its architecture; every value is JSON-able.

    Args:
        model: ``"gmn"`` (``GMN``), ``"dmc"`` (``DMC``), ``"deepsets"`` (``DeepSetsMeta``) or ``"statnn"``
            (``StatNN``).
        options: keyword arguments of that model's config (``GMNConfig``, ``DMCConfig``, ``DeepSetsMetaConfig``,
            ``StatNNConfig``); missing keys take the config's defaults.
    """

    model: str = "gmn"
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in METANETS:
            raise ValueError(f"expected model in {sorted(METANETS)}, got {self.model!r}")
        if not isinstance(self.options, dict):
            raise ValueError(f"expected options to be a dict of config values, got {type(self.options).__name__}")
        known = set(METANETS[self.model][1].__dataclass_fields__)
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise ValueError(
                f"{METANETS[self.model][1].__name__} has no option(s) {unknown}; expected keys among {sorted(known)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def build_metanet(config: MetanetConfig | dict | None = None) -> nn.Module:
    """The metanetwork of ``config`` (a ``MetanetConfig`` or its dict; default: a GMN with default options).

    Returns:
        ``GMN``, ``DMC``, ``DeepSetsMeta`` or ``StatNN``; each maps a ``Batch`` of parameter graphs to logits
        ``[num_graphs]``.
    """
    if config is None:
        config = MetanetConfig()
    elif isinstance(config, dict):
        config = MetanetConfig(**config)
    model_cls, config_cls = METANETS[config.model]
    return model_cls(config_cls(**config.options))


# -- registry ---------------------------------------------------------------------------------------------------------
from zoo.registry import Family, register_family, register_model  # noqa: E402

register_family(
    Family(
        name="gmn",
        module="zoo.methods.gmn:GMNModule",
        datamodule="zoo.data.netzoo:NetZooDataModule",
        paper={
            "title": "Graph Metanetworks for Processing Diverse Neural Architectures",
            "arxiv": "2312.04501",
            "authors": ["Derek Lim", "Haggai Maron", "Marc T. Law", "Jonathan Lorraine", "James Lucas"],
            "year": 2024,
            "url": "https://research.nvidia.com/labs/toronto-ai/GMN/",
        },
        # our implementation's license; the official code's LICENSE (NVIDIA proprietary) forbids use, so nothing of
        # it is reused here (see the module docstring)
        license="mit",
        upstream="https://github.com/cptq/graph_metanetworks",
        citation="""@inproceedings{lim2024graph,
  title     = {Graph Metanetworks for Processing Diverse Neural Architectures},
  author    = {Lim, Derek and Maron, Haggai and Law, Marc T. and Lorraine, Jonathan and Lucas, James},
  booktitle = {The Twelfth International Conference on Learning Representations},
  year      = {2024}
}""",
        extra="graph",
        card="zoo.methods.gmn:card_sections",
    )
)


@register_model(
    family="gmn",
    dataset="netzoo-cnn",
    data={"kind": "cnn", "split": "100"},
    metric="r2",
    recipe="recipes/gmn/gmn_cnn.yaml",
    sha256="45a0583ba9a59581e02d92f704defb2d75abd147eff681bbfb5f3bd7d087f2c1",
    summary="GMN predicting a 2D CNN's MNIST test accuracy from its weights (our 400-CNN zoo, 100% split).",
    tags=["metanetwork", "graph-neural-network", "weight-space"],
)
def gmn_cnn_netzoo(**overrides) -> MetanetConfig:
    options = {"hidden": 32, "layers": 4, "readout_hidden": 0, "zero_init": True, "undirected": False}
    return MetanetConfig(model="gmn", options=options | {"activation_embedding": False} | overrides)
