"""GAug-M and GAug-O, "Data Augmentation for Graph Neural Networks".

Paper: Tong Zhao, Yozen Liu, Leonardo Neves, Oliver Woodford, Meng Jiang, Neil Shah, AAAI 2021, arXiv:2006.06830.
Upstream code: https://github.com/zhao-tong/GAug (MIT; torch 1.4 + DGL 0.4). This file is an independent
implementation on torch_geometric, MIT licensed.

A neural edge predictor scores every node pair from a two-layer GCN encoder Z and the inner-product decoder Z Zᵀ.

* **GAug-M** (``method="m"``): a VGAE is trained on the graph; the ⌊|E|·rm/100⌋ existing edges it scores lowest are
  removed and the ⌊|E|·add/100⌋ non-edges it scores highest are added (``edit_edges``); the classifier is trained
  and evaluated on the edited graph. The VGAE is part of the checkpoint, so the edit is recomputed for any graph.
* **GAug-O** (``method="o"``): a GAE and the classifier are trained jointly; every epoch a graph is sampled from
  P = α·ZZᵀ/max(ZZᵀ) + (1-α)·Ã with a relaxed-Bernoulli straight-through sampler (``sample_adjacency``); at
  inference the classifier runs on the original graph.
* ``method="original"``: the classifier alone on the original graph (the baseline).

Classifiers (``GNNClassifier``): GCN, GraphSAGE with the "gcn" aggregator, GAT, and JK-Net (GraphSAGE-gcn layers
with concatenating jumping knowledge), built from PyG layers. Each runs on a sparse ``edge_index`` and, for GAug-O's
training graphs, on a dense sampled adjacency with gradients to every entry (GCN, GraphSAGE, JK-Net).

torch_geometric is imported where it is used; importing this module needs only torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GAugConfig",
    "EdgePredictor",
    "GNNClassifier",
    "GAugNet",
    "gcn_normalize",
    "dense_gcn_normalize",
    "edit_edges",
    "sample_adjacency",
    "edge_loss",
    "build_gaug",
]

GNNS = ("gcn", "gsage", "gat", "jknet")
METHODS = ("original", "m", "o")


def _pyg():
    try:
        import torch_geometric
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "the gaug family needs torch_geometric; install the extra with `pip install zoo[graph]`"
        ) from e
    return torch_geometric


@dataclass
class GAugConfig:
    """Architecture of a GAug model; every value is JSON-able.

    Args:
        method: ``"original"``, ``"m"`` (GAug-M) or ``"o"`` (GAug-O).
        gnn: classifier, ``"gcn"``, ``"gsage"``, ``"gat"`` or ``"jknet"``.
        in_channels: node feature size; 0 = taken from the data when training starts.
        num_classes: number of classes; 0 = taken from the data when training starts.
        hidden: classifier hidden size (GAT: heads × per-head size).
        layers: graph layers of the classifier (paper: 2; JK-Net 3).
        heads: GAT attention heads of the hidden layers (output layer: 1).
        dropout: dropout before every layer but the first (GAT: feature and attention dropout ``gat_dropout``).
        gat_dropout: GAT feature and attention dropout.
        ep_hidden: edge predictor's first GCN layer width (GAug-O GAE 128; GAug-M VGAE 32).
        ep_emb: edge predictor's embedding size (GAug-O 32; GAug-M 16).
        rm_pct: GAug-M, percent of edges removed.
        add_pct: GAug-M, percent of |E| non-edges added.
    """

    method: str = "o"
    gnn: str = "gcn"
    in_channels: int = 0
    num_classes: int = 0
    hidden: int = 128
    layers: int = 2
    heads: int = 8
    dropout: float = 0.5
    gat_dropout: float = 0.6
    ep_hidden: int = 128
    ep_emb: int = 32
    rm_pct: float = 0.0
    add_pct: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"expected method in {METHODS}, got {self.method!r}")
        if self.gnn not in GNNS:
            raise ValueError(f"expected gnn in {GNNS}, got {self.gnn!r}")
        if self.layers < 1:
            raise ValueError(f"expected layers >= 1, got {self.layers}")
        if self.gnn == "gat" and self.hidden % self.heads:
            raise ValueError(f"GAT hidden size {self.hidden} must be a multiple of heads={self.heads}")
        if not (0 <= self.rm_pct <= 100 and 0 <= self.add_pct):
            raise ValueError(f"expected 0 <= rm_pct <= 100 and add_pct >= 0, got {self.rm_pct}, {self.add_pct}")

    def to_dict(self) -> dict:
        return asdict(self)


# -- normalisation ----------------------------------------------------------------------------------------------------
def gcn_normalize(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""Sparse :math:`\hat A = \tilde D^{-1/2} (A + I) \tilde D^{-1/2}` in O(E): ``(edge_index, weight)`` with the
    self-loops added (PyG ``gcn_norm``). ``edge_index`` ``[2, E]`` without or with self-loops."""
    _pyg()
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    return gcn_norm(edge_index, edge_weight, num_nodes, add_self_loops=True)


def dense_gcn_normalize(adj: Tensor) -> Tensor:
    r"""Dense :math:`D^{-1/2} A D^{-1/2}` of an adjacency that already holds its self-loops, by broadcasting
    (O(N²), not the O(N³) product with diagonal matrices). ``adj`` ``[N, N]``."""
    d = adj.sum(1).clamp_min(1e-12).pow(-0.5)
    return d[:, None] * adj * d[None, :]


# -- blocks -----------------------------------------------------------------------------------------------------------
class EdgePredictor(nn.Module):
    r"""GCN encoder and inner-product decoder: H = f(Â X W₀), Z = g(Â H W₁), logits L = Z Zᵀ ``[N, N]``.

    GAug-O's GAE (``variational=False``): f = identity, g = ReLU (so L ≥ 0). GAug-M's VGAE (``variational=True``):
    f = ELU, g = identity, and a log-σ branch; in training Z = μ + ε·σ, in eval Z = μ. No biases.

    Args:
        in_channels: feature size.
        hidden: width of H.
        emb: width of Z.
        variational: VGAE instead of GAE.
    """

    def __init__(self, in_channels: int, hidden: int, emb: int, variational: bool = False) -> None:
        super().__init__()
        _pyg()
        from torch_geometric.nn import GCNConv

        self.variational = variational
        self.base = GCNConv(in_channels, hidden, bias=False, normalize=False)
        self.mean = GCNConv(hidden, emb, bias=False, normalize=False)
        self.logstd = GCNConv(hidden, emb, bias=False, normalize=False) if variational else None
        self.last_mean: Tensor | None = None
        self.last_logstd: Tensor | None = None

    def embed(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        """Z ``[N, emb]`` on the normalised graph ``(edge_index, edge_weight)`` (see ``gcn_normalize``)."""
        h = self.base(x, edge_index, edge_weight)
        if self.variational:
            h = F.elu(h)
            mu = self.mean(h, edge_index, edge_weight)
            self.last_mean = mu
            if not self.training:
                return mu
            logstd = self.logstd(h, edge_index, edge_weight)
            self.last_logstd = logstd
            return mu + torch.randn_like(mu) * logstd.exp()
        return F.relu(self.mean(h, edge_index, edge_weight))

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        """Pair logits ``[N, N]`` = Z Zᵀ."""
        z = self.embed(x, edge_index, edge_weight)
        return z @ z.t()


class GNNClassifier(nn.Module):
    """Node classifier from PyG layers, on a sparse graph (``forward``) or a dense adjacency (``forward_dense``).

    * ``gcn``: ``GCNConv`` layers, Â (H W) + b.
    * ``gsage``: ``SAGEConv`` with mean aggregation over the neighbours *and the node itself* (the "gcn"
      aggregator: Linear(row-normalised Ã H)), no root weight, no bias. Both the mean and the bias-free Linear
      are linear maps, so the layer computes the same value as row-normalised Ã (H W): it projects first and
      averages the narrow projection (3-4× faster on CiteSeer's 3,703 features, for the sparse and the dense
      graph alike).
    * ``gat``: ``GATConv``, ``heads`` × ``hidden/heads`` units with ELU, one output head; feature and attention
      dropout ``gat_dropout``.
    * ``jknet``: ``layers`` GraphSAGE-gcn layers, their outputs concatenated (PyG ``JumpingKnowledge("cat")``),
      then a Linear layer.

    ReLU between layers (GAT: ELU), dropout before every layer but the first, Xavier-uniform weights, zero biases.

    Args:
        config: the architecture (``in_channels`` and ``num_classes`` must be set).
    """

    def __init__(self, config: GAugConfig) -> None:
        super().__init__()
        _pyg()
        from torch_geometric.nn import GATConv, GCNConv, JumpingKnowledge, SAGEConv

        c = config
        self.gnn, self.layers_n = c.gnn, c.layers
        self.dropout = c.gat_dropout if c.gnn == "gat" else c.dropout
        self.convs = nn.ModuleList()
        if c.gnn == "gat":
            per_head = c.hidden // c.heads
            dims = [c.in_channels] + [c.hidden] * (c.layers - 1)
            for i in range(c.layers - 1):
                self.convs.append(GATConv(dims[i], per_head, heads=c.heads, dropout=c.gat_dropout))
            self.convs.append(GATConv(dims[-1], c.num_classes, heads=1, dropout=c.gat_dropout))
        elif c.gnn == "jknet":
            dims = [c.in_channels] + [c.hidden] * c.layers
            for i in range(c.layers):
                self.convs.append(SAGEConv(dims[i], dims[i + 1], aggr="mean", root_weight=False, bias=False))
            self.jk = JumpingKnowledge("cat")
            self.out = nn.Linear(c.hidden * c.layers, c.num_classes)
        else:
            dims = [c.in_channels] + [c.hidden] * (c.layers - 1) + [c.num_classes]
            for i in range(c.layers):
                if c.gnn == "gcn":
                    self.convs.append(GCNConv(dims[i], dims[i + 1]))
                else:
                    self.convs.append(SAGEConv(dims[i], dims[i + 1], aggr="mean", root_weight=False, bias=False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() >= 2 and not name.endswith(("att_src", "att_dst")):
                nn.init.xavier_uniform_(p)
            elif p.dim() >= 2:
                nn.init.xavier_uniform_(p.view(p.shape[-2], p.shape[-1]))
            else:
                nn.init.zeros_(p)

    def _act(self, h: Tensor) -> Tensor:
        return F.elu(h) if self.gnn == "gat" else F.relu(h)

    def _is_last(self, i: int) -> bool:
        return self.gnn != "jknet" and i == len(self.convs) - 1

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Logits ``[N, C]`` on the graph ``edge_index`` ``[2, E]`` (self-loops are added as each layer needs)."""
        from torch_geometric.utils import add_remaining_self_loops

        if self.gnn in ("gsage", "jknet"):
            edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=x.shape[0])

            def sage(conv, h: Tensor) -> Tensor:  # mean over in-neighbours of (H W): SAGEConv's value, projected first
                hw = conv.lin_l(h)
                return conv.propagate(edge_index, x=(hw, hw), size=None)

            return self._run(x, sage)
        return self._run(x, lambda conv, h: conv(h, edge_index))

    def forward_dense(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[N, C]`` on a dense adjacency ``adj`` ``[N, N]`` that holds its self-loops (GAug-O's sampled
        graph). GCN uses D^-1/2 A D^-1/2, GraphSAGE / JK-Net the row-normalised A, both as dense products so that
        every entry of ``adj`` gets a gradient; GAT attends over the non-zeros of ``adj`` (no gradient to it)."""
        if self.gnn == "gat":
            return self.forward(x, adj.detach().nonzero().t())
        if self.gnn == "gcn":
            a = dense_gcn_normalize(adj)
            return self._run(x, lambda conv, h: a @ conv.lin(h) + conv.bias)
        a = adj / adj.sum(1, keepdim=True).clamp_min(1e-12)
        return self._run(x, lambda conv, h: a @ conv.lin_l(h))

    def _run(self, x: Tensor, layer) -> Tensor:
        h, outs = x, []
        for i, conv in enumerate(self.convs):
            if i > 0:
                h = F.dropout(h, self.dropout, self.training)
            h = layer(conv, h)
            if not self._is_last(i):
                h = self._act(h)
            outs.append(h)
        if self.gnn == "jknet":
            return self.out(self.jk(outs))
        return h


# -- graph operations -------------------------------------------------------------------------------------------------
def _upper(edge_index: Tensor) -> Tensor:
    """The strict-upper-triangle pairs (i < j) of an undirected edge_index, unique, ``[2, |E|]``."""
    from torch_geometric.utils import coalesce

    keep = edge_index[0] < edge_index[1]
    return coalesce(edge_index[:, keep])


def edit_edges(logits: Tensor, edge_index: Tensor, rm_pct: float, add_pct: float) -> Tensor:
    """GAug-M's deterministic edit of an undirected graph by edge scores.

    With E the strict-upper-triangle edges: remove the ⌊|E|·rm_pct/100⌋ edges with the lowest score, add the
    ⌊|E|·add_pct/100⌋ non-edges (i < j) with the highest score, and symmetrise. Scores are the pair logits (the
    order of σ(logits) without its float32 ties); the diagonal is never added.

    Args:
        logits: ``[N, N]`` symmetric pair scores.
        edge_index: ``[2, 2|E|]`` undirected, without self-loops.
        rm_pct: percent of edges to remove.
        add_pct: percent of |E| non-edges to add.

    Returns:
        The edited ``edge_index`` ``[2, 2|E'|]``, undirected, without self-loops, coalesced.
    """
    from torch_geometric.utils import coalesce, to_undirected

    n = logits.shape[0]
    upper = _upper(edge_index)
    m = upper.shape[1]
    n_rm, n_add = int(m * rm_pct // 100), int(m * add_pct // 100)
    if n_rm == 0 and n_add == 0:
        return coalesce(to_undirected(upper, num_nodes=n), num_nodes=n)
    kept = upper
    if n_rm:
        score = logits[upper[0], upper[1]]
        order = torch.argsort(score, stable=True)  # ascending: the first n_rm are removed
        kept = upper[:, order[n_rm:]]
    if n_add:
        masked = logits.detach().clone()
        masked.masked_fill_(~torch.ones(n, n, dtype=torch.bool, device=logits.device).triu(1), float("-inf"))
        masked[upper[0], upper[1]] = float("-inf")
        n_free = n * (n - 1) // 2 - m
        if n_add > n_free:
            raise ValueError(f"cannot add {n_add} edges: only {n_free} non-edges exist")
        top = torch.topk(masked.flatten(), n_add).indices
        added = torch.stack([top // n, top % n])
        kept = torch.cat([kept, added], 1)
    return coalesce(to_undirected(kept, num_nodes=n), num_nodes=n)


def sample_adjacency(
    logits: Tensor, edge_index: Tensor, alpha: float, temperature: float, generator: torch.Generator | None = None
) -> Tensor:
    """GAug-O's sampled training graph, dense ``[N, N]`` with gradient to ``logits``.

    P = α·L/max(L) + (1-α)·Ã (the max-normalised logits, as the official code: σ(L) ≥ ½ for L ≥ 0 would give a
    dense graph); A' = straight-through relaxed Bernoulli(τ, P): hard {0, 1} forward, the relaxed sample's gradient
    backward; keep the strict upper triangle, symmetrise, set the diagonal to 1.

    Args:
        logits: ``[N, N]`` pair logits (≥ 0 from the GAE).
        edge_index: ``[2, E]`` the original undirected graph (Ã = A + I is formed from it).
        alpha: interpolation weight of the predicted probabilities.
        temperature: τ of the relaxed Bernoulli.
        generator: random generator of the uniform noise (None: the global one).
    """
    n = logits.shape[0]
    probs = alpha * logits / logits.max().clamp_min(1e-12)
    if alpha < 1:
        loops = torch.arange(n, device=logits.device)
        rows = torch.cat([edge_index[0], loops])
        cols = torch.cat([edge_index[1], loops])
        orig = torch.zeros_like(probs).index_put((rows, cols), torch.ones_like(rows, dtype=probs.dtype))
        probs = probs + (1 - alpha) * orig
    eps = torch.finfo(probs.dtype).eps  # torch's RelaxedBernoulli clamps the same way
    u = torch.rand(probs.shape, generator=generator, dtype=probs.dtype, device=probs.device)
    soft = torch.sigmoid((torch.logit(probs, eps) + torch.logit(u, eps)) / temperature)  # logistic noise
    hard = (soft > 0.5).to(soft.dtype)
    sampled = hard - soft.detach() + soft  # straight-through
    upper = sampled.triu(1)
    return upper + upper.t() + torch.eye(n, dtype=sampled.dtype, device=sampled.device)


def edge_loss(logits: Tensor, edge_index: Tensor) -> Tensor:
    """The edge predictor's reconstruction loss w · BCEWithLogits(L, Ã; pos_weight) over all N² pairs.

    S = |Ã| (self-loops counted), pos_weight = (N² − S)/S, w = N²/(2(N² − S)); computed from the positive pairs
    without building the dense target: Σ_all softplus(L) + Σ_pos [pos_weight·softplus(−L) − softplus(L)], / N².
    """
    n = logits.shape[0]
    loops = torch.arange(n, device=logits.device)
    rows, cols = torch.cat([edge_index[0], loops]), torch.cat([edge_index[1], loops])
    s = float(rows.numel())
    pos_weight = (n * n - s) / s
    w = n * n / (2 * (n * n - s))
    pos = logits[rows, cols]
    total = F.softplus(logits).sum() + (pos_weight * F.softplus(-pos) - F.softplus(pos)).sum()
    return w * total / (n * n)


# -- main module ------------------------------------------------------------------------------------------------------
class GAugNet(nn.Module):
    """A GAug model: edge predictor (GAug-M's VGAE or GAug-O's GAE; none for ``original``) and classifier.

    ``forward(x, edge_index)`` returns class logits ``[N, C]`` of every node: GAug-M classifies on its edited graph
    (``augment``), GAug-O and ``original`` on the given graph. GAug-M edits by its VGAE's scores unless
    ``edge_scores`` holds an ``[N, N]`` score matrix from elsewhere (``zoo.data.gaug.load_edge_scores``), which then
    takes their place.

    Args:
        config: the architecture (``in_channels`` and ``num_classes`` must be set).
    """

    def __init__(self, config: GAugConfig) -> None:
        super().__init__()
        if config.in_channels < 1 or config.num_classes < 1:
            raise ValueError(
                f"in_channels and num_classes must be set before building, got {config.in_channels} and "
                f"{config.num_classes} (0 means: infer from the data when training starts)"
            )
        self.config = config
        self.classifier = GNNClassifier(config)
        self.edge_predictor = None
        self.edge_scores: Tensor | None = None
        if config.method != "original":
            self.edge_predictor = EdgePredictor(
                config.in_channels, config.ep_hidden, config.ep_emb, variational=config.method == "m"
            )

    def edge_logits(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Pair logits ``[N, N]`` of the edge predictor on the (normalised) graph."""
        ei, w = gcn_normalize(edge_index, x.shape[0])
        return self.edge_predictor(x, ei, w)

    @torch.no_grad()
    def augment(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """GAug-M's edited graph (eval-mode VGAE, Z = μ, or ``edge_scores`` when set); other methods return
        ``edge_index`` unchanged."""
        if self.config.method != "m":
            return edge_index
        if self.edge_scores is not None:
            if self.edge_scores.shape[0] != x.shape[0]:
                raise ValueError(
                    f"edge_scores is [{self.edge_scores.shape[0]}, {self.edge_scores.shape[0]}], the graph has "
                    f"{x.shape[0]} nodes: set scores written for this graph"
                )
            scores = self.edge_scores.to(x.device)
            return edit_edges(scores, edge_index, self.config.rm_pct, self.config.add_pct)
        was = self.edge_predictor.training
        self.edge_predictor.eval()
        logits = self.edge_logits(x, edge_index)
        self.edge_predictor.train(was)
        return edit_edges(logits, edge_index, self.config.rm_pct, self.config.add_pct)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.classifier(x, self.augment(x, edge_index))


def build_gaug(config: GAugConfig | dict) -> GAugNet:
    """Build the plain ``nn.Module`` from a config (a ``GAugConfig`` or its dict)."""
    if isinstance(config, dict):
        config = GAugConfig(**config)
    return GAugNet(config)


# -- registry ---------------------------------------------------------------------------------------------------------
from zoo.registry import Family, register_family, register_model  # noqa: E402

register_family(
    Family(
        name="gaug",
        module="zoo.methods.gaug:GAugModule",
        datamodule="zoo.data.gaug:GraphDataModule",
        paper={
            "title": "Data Augmentation for Graph Neural Networks",
            "arxiv": "2006.06830",
            "authors": ["Tong Zhao", "Yozen Liu", "Leonardo Neves", "Oliver Woodford", "Meng Jiang", "Neil Shah"],
            "year": 2021,
        },
        license="mit",
        upstream="https://github.com/zhao-tong/GAug",
        citation="""@inproceedings{zhao2021data,
  title     = {Data Augmentation for Graph Neural Networks},
  author    = {Zhao, Tong and Liu, Yozen and Neves, Leonardo and Woodford, Oliver and Jiang, Meng and Shah, Neil},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {35},
  number    = {12},
  pages     = {11015--11023},
  year      = {2021}
}""",
        extra="graph",
        card="zoo.methods.gaug:card_sections",
    )
)

_DIMS = {"cora": (1433, 7), "citeseer": (3703, 6)}
_TAGS = ("node-classification", "graph-neural-network", "graph-augmentation")


def _shipped(method: str, dataset: str, **overrides) -> GAugConfig:
    f, c = _DIMS[dataset]
    tuned = {("m", "cora"): (2, 57), ("m", "citeseer"): (0, 46)}
    extra = {}
    if method == "m":
        extra = dict(ep_hidden=32, ep_emb=16, rm_pct=tuned[(method, dataset)][0], add_pct=tuned[(method, dataset)][1])
    return GAugConfig(**({"method": method, "gnn": "gcn", "in_channels": f, "num_classes": c} | extra | overrides))


@register_model(
    family="gaug",
    dataset="cora",
    data={"name": "cora", "source": "gaug"},
    metric="micro_f1",
    recipe="recipes/gaug/m_gcn_cora.yaml",
    sha256="6be61774acd97137e4e7764e1f14b1cce769dca62583e587b4f5a1f8c02451ba",
    summary="GAug-M with a GCN on Cora (GAug split): VGAE-edited graph (remove 2%, add 57% of edges).",
    tags=_TAGS,
)
def gaug_m_gcn_cora(**overrides) -> GAugConfig:
    return _shipped("m", "cora", **overrides)


@register_model(
    family="gaug",
    dataset="citeseer",
    data={"name": "citeseer", "source": "gaug"},
    metric="micro_f1",
    recipe="recipes/gaug/m_gcn_citeseer.yaml",
    sha256="32aa6c2f3042f917ce4c9d3d7b56c8935da5aa7aaeec2e3d3d5e05f428f842a4",
    summary="GAug-M with a GCN on CiteSeer (GAug split): VGAE-edited graph (add 46% of edges).",
    tags=_TAGS,
)
def gaug_m_gcn_citeseer(**overrides) -> GAugConfig:
    return _shipped("m", "citeseer", **overrides)


@register_model(
    family="gaug",
    dataset="cora",
    data={"name": "cora", "source": "gaug"},
    metric="micro_f1",
    recipe="recipes/gaug/o_gcn_cora.yaml",
    sha256="72e14bdadb9de080078890ba1fc6fea09ffd11bf461f31a02b60458289003428",
    summary="GAug-O with a GCN on Cora (GAug split): GAE and GCN trained jointly on sampled graphs.",
    tags=_TAGS,
)
def gaug_o_gcn_cora(**overrides) -> GAugConfig:
    return _shipped("o", "cora", **overrides)


@register_model(
    family="gaug",
    dataset="citeseer",
    data={"name": "citeseer", "source": "gaug"},
    metric="micro_f1",
    recipe="recipes/gaug/o_gcn_citeseer.yaml",
    sha256="bdfbde2f7e361d919b80d363e6914e8381b3c4fca01a5786c57919a9f467d039",
    summary="GAug-O with a GCN on CiteSeer (GAug split): GAE and GCN trained jointly on sampled graphs.",
    tags=_TAGS,
)
def gaug_o_gcn_citeseer(**overrides) -> GAugConfig:
    return _shipped("o", "citeseer", **overrides)
