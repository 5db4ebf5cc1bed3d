r"""Parameter graphs: a neural network as a graph with one edge per parameter, and back.

After "Graph Metanetworks for Processing Diverse Neural Architectures" (Lim, Maron, Law, Lorraine, Lucas, ICLR 2024,
arXiv:2312.04501). The official code (``cptq/graph_metanetworks``) carries a proprietary NVIDIA license that forbids
its use; this file is an independent implementation of the schema as the paper describes it (MIT, as the zoo).

``to_graph(module)`` walks an ``nn.Sequential`` (nested Sequentials, ``nn.ModuleList``, lists of modules and the
blocks below allowed) in order and returns a ``torch_geometric.data.Data``:

* ``x`` ``[N, 3]`` long: layer index, neuron order (0…n−1 for the input and output neurons, −1 for every other
  node, which keeps the permutation symmetry of hidden neurons), node type (``NODE_TYPES``).
* ``edge_index`` ``[2, E]`` long, source → destination; the graph is a DAG and a multigraph (conv kernels).
* ``edge_attr`` ``[E, 6]`` float (float32, or float64 for float64 networks): value, layer index, edge type
  (``EDGE_TYPES``), three kernel/position slots (−1 where unused).
* ``edge_param`` ``[E]`` long: which parameter tensor the edge holds (index into ``param_names``; −1 for
  residual edges, which hold no parameter); ``edge_flat`` ``[E]`` long: the flat index inside that tensor (−1 for
  residual edges). ``param_names`` / ``param_shapes``: the qualified parameter names and shapes (Python lists).
  ``from_graph`` inverts the map with them. (The names avoid the substring "index" so that PyG batching does
  not shift them by the node count.)
* ``act`` ``[N]`` long: the activation applied to a neuron's output (``ACTIVATIONS``; 0 = none or unknown). An
  extension of ours: the paper's schema does not encode activations; ``GMNConfig.activation_embedding`` reads it.

One edge per parameter plus one parameter-free residual edge (value 1) per residual connection:
``E = #parameters + #residual edges``.

| module | nodes added (node type) | edges (edge type) |
|---|---|---|
| first parameterised layer | ``in`` input neurons: layer 0, order 0…in−1, the layer's neuron type | — |
| ``nn.Linear`` W ``[out, in]``, b | ``out`` neurons (0); a bias node (1) | W: in → out (0); b (1) |
| ``nn.Conv1d/2d/3d`` W ``[out, in/g, k…]`` | ``out`` channels (2); a bias node (3) | W: one per element (2)¹; b (3) |
| ``nn.BatchNorm*`` γ, β | a γ node (4), a β node (5); no neurons | γ node → each channel, value γ_c (5); β (6) |
| ``nn.LayerNorm`` (1-D shape) | γ (6), β (7) | γ (7), β (8) |
| ``nn.GroupNorm`` | γ (8), β (9) | γ (9), β (10) |
| ``nn.InstanceNorm*`` (affine) | γ (10), β (11) | γ (11), β (12) |
| ``nn.MultiheadAttention`` | ``d`` attention neurons (12)²; Q/K/V bias nodes (13) | W_q/k/v (13–15); b_q/k/v (16–18) |
| … its ``out_proj`` | as a Linear: ``d`` neurons (0), a bias node (1) | (0), (1) |
| ``DeepSetsLayer`` | ``out`` neurons (14); a bias node (15) | W₁ (19), W₂ (20), b (21) |
| ``GroupEquivariantLinear`` W ``[out, in, G]`` | ``out`` channels (16); a bias node (17) | W (22)¹; b (23) |
| residual connection | — | input (or shortcut neuron) i → output i, value 1 (4) |

¹ a multigraph: one edge per kernel (or group) element h between each in/out channel pair, h in slots 3–5.
² Q, K and V all map the inputs to the same ``d`` attention neurons; ``out_proj`` maps them to ``d`` new neurons.

Node and edge types 0–12 follow the paper's table (the official code's triplanar-grid types are not used);
13 and up are ours. The head count of attention, strides, paddings and dilations are not encoded.

Layer index: input neurons are layer 0; every weight layer that creates neurons (Linear, Conv, the attention's Q/K/V
and its out_proj, DeepSetsLayer, GroupEquivariantLinear) takes the next index, in module order; its neurons, bias
nodes and edges carry it. Norm nodes and edges carry the index of the neurons they scale; residual edges the index of
their destination. A projection shortcut comes after ``conv2`` in a ``ResidualBlock`` and so has the larger index.

Flatten: a ``Linear`` with ``in_features = m · n`` after a layer with ``n`` neurons (m > 1) reads a flattened
``[n, m]`` tensor. After a channel-first layer (conv, norms on conv channels, GroupEquivariantLinear) the layout
is channel-major (``torch.flatten`` of ``[C, H, W]``: feature f is channel f // m at position f % m); after a
feature-last layer (Linear, attention, DeepSets) it is position-major (``[T, d]``: channel f % n at position f // n).
Each such weight is one edge from its channel's node, the position in slot 3.

Blocks (use them, or subclasses, inside an ``nn.Sequential``):

* ``ResidualBlock``: act(norm₂(conv₂(act(norm₁(conv₁ x)))) + shortcut(x)), shortcut = identity or 1×1 conv + norm.
* ``FFNBlock``: x + W₂ σ(W₁ x + b₁) + b₂.
* ``TransformerBlock``: pre-norm, x ← x + MHA(LN₁ x); x ← x + W₂ σ(W₁ LN₂ x).
* ``DeepSetsLayer``: W₁ xᵢ + b + W₂ mean_j xⱼ over the set axis.
* ``GroupEquivariantLinear``: a linear map equivariant to cyclic shifts of a group axis of size G (a circulant
  weight per channel pair, i.e. a circular convolution whose kernel covers the whole axis):
  y[o, g] = b[o] + Σᵢ Σₕ W[o, i, h] x[i, (g − h) mod G].

Parameter-free modules (activations, pooling, Flatten, Dropout, Identity) are skipped; an activation module sets
``act`` of the current neurons. Any other module that holds parameters raises a ``TypeError`` naming it. Every
construction step is a handful of torch ops per layer (no Python loop per parameter or neuron).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "NODE_TYPES",
    "EDGE_TYPES",
    "ACTIVATIONS",
    "NUM_NODE_TYPES",
    "NUM_EDGE_TYPES",
    "NUM_ACTIVATIONS",
    "ResidualBlock",
    "FFNBlock",
    "TransformerBlock",
    "DeepSetsLayer",
    "GroupEquivariantLinear",
    "to_graph",
    "from_graph",
]

NODE_TYPES: dict[str, int] = {
    "neuron": 0,
    "linear_bias": 1,
    "conv_channel": 2,
    "conv_bias": 3,
    "batchnorm_weight": 4,
    "batchnorm_bias": 5,
    "layernorm_weight": 6,
    "layernorm_bias": 7,
    "groupnorm_weight": 8,
    "groupnorm_bias": 9,
    "instancenorm_weight": 10,
    "instancenorm_bias": 11,
    "attention_neuron": 12,
    "attention_bias": 13,
    "deepsets_neuron": 14,
    "deepsets_bias": 15,
    "group_channel": 16,
    "group_bias": 17,
}
EDGE_TYPES: dict[str, int] = {
    "linear": 0,
    "linear_bias": 1,
    "conv": 2,
    "conv_bias": 3,
    "residual": 4,
    "batchnorm_weight": 5,
    "batchnorm_bias": 6,
    "layernorm_weight": 7,
    "layernorm_bias": 8,
    "groupnorm_weight": 9,
    "groupnorm_bias": 10,
    "instancenorm_weight": 11,
    "instancenorm_bias": 12,
    "attention_q": 13,
    "attention_k": 14,
    "attention_v": 15,
    "attention_q_bias": 16,
    "attention_k_bias": 17,
    "attention_v_bias": 18,
    "deepsets_1": 19,
    "deepsets_2": 20,
    "deepsets_bias": 21,
    "group": 22,
    "group_bias": 23,
}
#: activation module → id stored in ``Data.act`` (0: none or not known)
ACTIVATIONS: dict[type, int] = {
    nn.ReLU: 1,
    nn.GELU: 2,
    nn.SiLU: 3,
    nn.Tanh: 4,
    nn.Sigmoid: 5,
    nn.LeakyReLU: 6,
    nn.ELU: 7,
    nn.Softplus: 8,
}
NUM_NODE_TYPES = len(NODE_TYPES)
NUM_EDGE_TYPES = len(EDGE_TYPES)
NUM_ACTIVATIONS = max(ACTIVATIONS.values()) + 1

_ACT_BY_NAME = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
_NORMS = {  # norm class → (γ node, β node, γ edge, β edge) type names
    _BatchNorm: "batchnorm",
    nn.LayerNorm: "layernorm",
    nn.GroupNorm: "groupnorm",
    _InstanceNorm: "instancenorm",
}
_SUPPORTED = (
    "nn.Linear, nn.Conv1d/2d/3d, nn.BatchNorm*, nn.LayerNorm (1-D shape), nn.GroupNorm, nn.InstanceNorm* (affine), "
    "nn.MultiheadAttention (self-attention), ResidualBlock, FFNBlock, TransformerBlock, DeepSetsLayer, "
    "GroupEquivariantLinear, inside nn.Sequential / nn.ModuleList"
)


def _activation(name: str) -> nn.Module:
    if name not in _ACT_BY_NAME:
        raise ValueError(f"expected activation in {sorted(_ACT_BY_NAME)}, got {name!r}")
    return _ACT_BY_NAME[name]()


# -- blocks -----------------------------------------------------------------------------------------------------------
class ResidualBlock(nn.Module):
    r"""2D residual block: y = σ(norm₂(conv₂(σ(norm₁(conv₁ x)))) + s(x)).

    conv₁ is 3×3 with ``stride``, conv₂ 3×3, both without bias; s is the identity, or a 1×1 conv (``stride``, no
    bias) + norm when ``stride != 1`` or the channel count changes (the projection shortcut).

    Args:
        in_channels: C_in of x ``[B, C_in, H, W]``.
        out_channels: C_out of y ``[B, C_out, H', W']``.
        stride: stride of conv₁ and of the projection.
        norm: ``"bn"`` (BatchNorm2d), ``"gn"`` (GroupNorm with gcd(C_out, 4) groups) or ``"none"``.
        activation: σ, ``"relu"``, ``"gelu"``, ``"silu"`` or ``"tanh"``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, norm: str = "bn", activation: str = "relu"
    ) -> None:
        super().__init__()

        def make_norm() -> nn.Module:
            if norm == "bn":
                return nn.BatchNorm2d(out_channels)
            if norm == "gn":
                return nn.GroupNorm(math.gcd(out_channels, 4), out_channels)
            if norm == "none":
                return nn.Identity()
            raise ValueError(f"expected norm in ('bn', 'gn', 'none'), got {norm!r}")

        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = make_norm()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = make_norm()
        self.act = _activation(activation)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), make_norm()
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C_in, H, W]`` → ``[B, C_out, H', W']``."""
        h = self.act(self.norm1(self.conv1(x)))
        return self.act(self.norm2(self.conv2(h)) + self.shortcut(x))


class FFNBlock(nn.Module):
    r"""Position-wise feed-forward block with a residual: y = x + W₂ σ(W₁ x + b₁) + b₂.

    Args:
        dim: d of x ``[..., d]``.
        hidden: width of W₁.
        activation: σ, ``"relu"``, ``"gelu"``, ``"silu"`` or ``"tanh"``.
    """

    def __init__(self, dim: int, hidden: int, activation: str = "relu") -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.act = _activation(activation)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., d]`` → ``[..., d]``."""
        return x + self.lin2(self.act(self.lin1(x)))


class TransformerBlock(nn.Module):
    r"""Pre-norm transformer encoder block: x ← x + MHA(LN₁ x); x ← x + W₂ σ(W₁ LN₂ x + b₁) + b₂.

    Args:
        dim: d of x ``[B, T, d]`` (batch first).
        heads: attention heads (d must be a multiple).
        hidden: FFN width; 0 means 4·d.
        activation: σ, ``"relu"``, ``"gelu"``, ``"silu"`` or ``"tanh"``.
    """

    def __init__(self, dim: int, heads: int = 2, hidden: int = 0, activation: str = "gelu") -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.lin1 = nn.Linear(dim, hidden or 4 * dim)
        self.act = _activation(activation)
        self.lin2 = nn.Linear(hidden or 4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, d]`` → ``[B, T, d]``."""
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.lin2(self.act(self.lin1(self.norm2(x))))


class DeepSetsLayer(nn.Module):
    r"""Permutation-equivariant set layer: yᵢ = W₁ xᵢ + b + W₂ mean_j xⱼ.

    Args:
        in_features: width of x ``[..., n, in]`` (n: set size).
        out_features: width of y ``[..., n, out]``.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(in_features, out_features)
        self.lin2 = nn.Linear(in_features, out_features, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., n, in]`` → ``[..., n, out]``."""
        return self.lin1(x) + self.lin2(x.mean(-2, keepdim=True))


class GroupEquivariantLinear(nn.Module):
    r"""Linear layer equivariant to cyclic shifts of a group axis (ℤ_G): y[o, g] = b[o] + Σᵢ Σₕ W[o, i, h] x[i, g − h].

    Indices are mod G. For each channel pair (o, i) the G×G map on the group axis is the circulant matrix of the
    vector W[o, i, :] (a circular convolution whose kernel spans the whole axis), so shifting x along the axis shifts
    y the same way. Parameters: W ``[C_out, C_in, G]``, b ``[C_out]``.

    Args:
        in_channels: C_in of x ``[..., C_in, G]``.
        out_channels: C_out of y ``[..., C_out, G]``.
        group_size: G.
        bias: add b.
    """

    def __init__(self, in_channels: int, out_channels: int, group_size: int, bias: bool = True) -> None:
        super().__init__()
        self.group_size = group_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, group_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        bound = 1 / math.sqrt(in_channels * group_size)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C_in, G]`` → ``[..., C_out, G]``."""
        g = self.group_size
        if x.shape[-1] != g:
            raise ValueError(f"expected a group axis of size {g} last, got input of shape {tuple(x.shape)}")
        shift = (torch.arange(g)[:, None] - torch.arange(g)[None, :]) % g  # [G(g), G(h)] → g − h
        y = torch.einsum("...igh,oih->...og", x[..., shift], self.weight)
        return y if self.bias is None else y + self.bias[:, None]


# -- construction -----------------------------------------------------------------------------------------------------
def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


class _Builder:
    """Collects node and edge chunks layer by layer; ``cur`` holds the node ids of the neurons that flow on."""

    def __init__(self) -> None:
        self.num_nodes = 0
        self.layer = 0
        self.nodes: list[Tensor] = []  # [n, 3] chunks
        self.src: list[Tensor] = []
        self.dst: list[Tensor] = []
        self.attr: list[Tensor] = []  # [e, 6] chunks (float64; cast at the end)
        self.param: list[Tensor] = []
        self.flat: list[Tensor] = []
        self.names: list[str] = []
        self.tensors: list[Tensor] = []
        self.acts: list[tuple[Tensor, int]] = []
        self.seen: dict[int, str] = {}
        self.cur: Tensor | None = None
        self.channel_first = False

    # -- primitives
    def new_nodes(self, count: int, ntype: str, layer: int) -> Tensor:
        ids = torch.arange(self.num_nodes, self.num_nodes + count)
        chunk = torch.empty(count, 3, dtype=torch.long)
        chunk[:, 0], chunk[:, 1], chunk[:, 2] = layer, -1, NODE_TYPES[ntype]
        self.nodes.append(chunk)
        self.num_nodes += count
        return ids

    def add_edges(
        self,
        src: Tensor,
        dst: Tensor,
        values: Tensor,
        etype: str,
        layer: int,
        pos: Tensor | None = None,
        param: int = -1,
        flat: Tensor | None = None,
    ) -> None:
        e = src.numel()
        attr = torch.full((e, 6), -1.0, dtype=torch.float64)
        attr[:, 0] = values.detach().reshape(-1).to(torch.float64)
        attr[:, 1] = layer
        attr[:, 2] = EDGE_TYPES[etype]
        if pos is not None:
            attr[:, 3 : 3 + pos.shape[1]] = pos
        self.src.append(src)
        self.dst.append(dst)
        self.attr.append(attr)
        self.param.append(torch.full((e,), param, dtype=torch.long))
        self.flat.append(torch.full((e,), -1, dtype=torch.long) if flat is None else flat)

    def register(self, name: str, p: Tensor) -> int:
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise ValueError(f"parameter {name} is not initialised (lazy module); run one forward pass first")
        if id(p) in self.seen:
            raise ValueError(
                f"parameter {name} is the same tensor as {self.seen[id(p)]}: weight sharing is not supported; "
                "give each layer its own parameters"
            )
        self.seen[id(p)] = name
        self.names.append(name)
        self.tensors.append(p)
        return len(self.names) - 1

    def inputs(self, width: int, ntype: str, channel_first: bool, name: str, what: str) -> Tensor:
        """The current neurons (width checked), or ``width`` new input neurons if nothing came before."""
        if self.cur is None:
            ids = self.new_nodes(width, ntype, 0)
            self.nodes[-1][:, 1] = torch.arange(width)
            self.cur, self.channel_first = ids, channel_first
        elif self.cur.numel() != width:
            raise ValueError(
                f"{name} expects {width} {what}, but the preceding layer gives {self.cur.numel()} neurons; "
                "check the layer order of the module"
            )
        return self.cur

    def weight_edges(
        self,
        weight: Tensor,
        src: Tensor,
        dst: Tensor,
        etype: str,
        param: int,
        groups: int = 1,
        offset: int = 0,
        spatial: int = 1,
    ) -> None:
        """Edges of W ``[out, in/groups, k…]``: in-node → out-node, one per element, kernel position in the slots.

        ``spatial = m > 1``: W is ``[out, n·m]`` over a flattened ``[n, m]`` (or ``[m, n]``) input, see the module
        docstring. ``offset``: flat index of W's first element in its parameter (attention's stacked Q, K, V).
        """
        out, cin = weight.shape[0], weight.shape[1]
        k = math.prod(weight.shape[2:])
        f = torch.arange(weight.numel())
        o = f // (cin * k)
        j = (f // k) % cin
        pos = None
        if spatial > 1:
            n = src.numel()
            if self.channel_first:
                c, s = j // spatial, j % spatial
            else:
                c, s = j % n, j // n
            i, pos = c, s[:, None]
        else:
            i = (o // (out // groups)) * cin + j
            if weight.dim() > 2:
                pos = torch.stack(torch.unravel_index(f % k, weight.shape[2:]), 1)
        self.add_edges(src[i], dst[o], weight, etype, self.layer, pos, param, f + offset)

    def bias_edges(self, bias: Tensor, dst: Tensor, ntype: str, etype: str, param: int, offset: int = 0) -> None:
        node = self.new_nodes(1, ntype, self.layer)
        f = torch.arange(bias.numel())
        self.add_edges(node.expand(bias.numel()), dst, bias, etype, self.layer, None, param, f + offset)

    def residual(self, src: Tensor, dst: Tensor, name: str, layer: int | None = None) -> None:
        """Residual edges src[i] → dst[i], value 1, at ``layer`` (default: the current layer index)."""
        if src.numel() != dst.numel():
            raise ValueError(f"residual connection of {name}: {src.numel()} inputs vs {dst.numel()} outputs")
        self.add_edges(src, dst, torch.ones(dst.numel()), "residual", self.layer if layer is None else layer)

    # -- modules
    def visit(self, name: str, m: nn.Module) -> None:
        if isinstance(m, (nn.Sequential, nn.ModuleList)):
            for key, child in m._modules.items():
                if child is not None:
                    self.visit(_join(name, key), child)
        elif isinstance(m, ResidualBlock):
            self.residual_block(name, m)
        elif isinstance(m, FFNBlock):
            inp = self.inputs(m.lin1.in_features, "neuron", False, _join(name, "lin1"), "input features")
            self.linear(_join(name, "lin1"), m.lin1)
            self.activation(m.act)
            self.linear(_join(name, "lin2"), m.lin2)
            self.residual(inp, self.cur, name)
        elif isinstance(m, TransformerBlock):
            self.transformer_block(name, m)
        elif isinstance(m, DeepSetsLayer):
            self.deepsets(name, m)
        elif isinstance(m, GroupEquivariantLinear):
            self.group_linear(name, m)
        elif isinstance(m, nn.Linear):
            self.linear(name, m)
        elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            self.conv(name, m)
        elif isinstance(m, (_BatchNorm, nn.LayerNorm, nn.GroupNorm, _InstanceNorm)):
            self.norm(name, m)
        elif isinstance(m, nn.MultiheadAttention):
            self.attention(name, m)
        elif next(m.parameters(), None) is None:
            self.activation(m)
        else:
            raise TypeError(
                f"to_graph does not support {type(m).__name__} ({name or 'the root module'}), which holds "
                f"parameters; supported: {_SUPPORTED}. Rewrite the network from these layers."
            )

    def activation(self, m: nn.Module) -> None:
        act = next((a for cls, a in ACTIVATIONS.items() if type(m) is cls), 0)
        if act and self.cur is not None:
            self.acts.append((self.cur, act))

    def linear(self, name: str, m: nn.Linear, ntype: str = "neuron", btype: str = "linear_bias") -> None:
        n_in = m.in_features
        if self.cur is None or self.cur.numel() == n_in:
            src, spatial = self.inputs(n_in, "neuron", False, name, "input features"), 1
        elif n_in % self.cur.numel() == 0:
            src, spatial = self.cur, n_in // self.cur.numel()
        else:
            raise ValueError(
                f"Linear {name} expects {n_in} input features, but the preceding layer gives {self.cur.numel()} "
                "neurons (nor a multiple of it, as after Flatten); check the layer order of the module"
            )
        self.layer += 1
        out = self.new_nodes(m.out_features, ntype, self.layer)
        etype = "linear"
        self.weight_edges(m.weight, src, out, etype, self.register(_join(name, "weight"), m.weight), spatial=spatial)
        if m.bias is not None:
            self.bias_edges(m.bias, out, btype, "linear_bias", self.register(_join(name, "bias"), m.bias))
        self.cur, self.channel_first = out, False

    def conv(self, name: str, m: nn.Conv1d | nn.Conv2d | nn.Conv3d) -> None:
        src = self.inputs(m.in_channels, "conv_channel", True, name, "input channels")
        self.layer += 1
        out = self.new_nodes(m.out_channels, "conv_channel", self.layer)
        self.weight_edges(m.weight, src, out, "conv", self.register(_join(name, "weight"), m.weight), groups=m.groups)
        if m.bias is not None:
            self.bias_edges(m.bias, out, "conv_bias", "conv_bias", self.register(_join(name, "bias"), m.bias))
        self.cur, self.channel_first = out, True

    def norm(self, name: str, m: nn.Module) -> None:
        kind = next(v for k, v in _NORMS.items() if isinstance(m, k))
        if isinstance(m, nn.LayerNorm):
            if len(m.normalized_shape) != 1:
                raise TypeError(
                    f"to_graph supports LayerNorm over the last axis only; {name} normalises over "
                    f"{tuple(m.normalized_shape)}: use normalized_shape=({m.normalized_shape[-1]},) or GroupNorm(1, C)"
                )
            width, channel_first = m.normalized_shape[0], False
        else:
            width = m.num_channels if isinstance(m, nn.GroupNorm) else m.num_features
            channel_first = True
        weight, bias = getattr(m, "weight", None), getattr(m, "bias", None)
        if weight is None and bias is None:
            return  # not affine: parameter-free
        dst = self.inputs(width, "conv_channel" if channel_first else "neuron", channel_first, name, "channels")
        for p, part in ((weight, "weight"), (bias, "bias")):
            if p is not None:
                node = self.new_nodes(1, f"{kind}_{part}", self.layer)
                pid = self.register(_join(name, part), p)
                self.add_edges(node.expand(width), dst, p, f"{kind}_{part}", self.layer, None, pid, torch.arange(width))

    def attention(self, name: str, m: nn.MultiheadAttention) -> None:
        if not m._qkv_same_embed_dim or m.bias_k is not None:
            raise TypeError(
                f"to_graph supports self-attention nn.MultiheadAttention with kdim = vdim = embed_dim and no "
                f"add_bias_kv; {name} has kdim={m.kdim}, vdim={m.vdim}, add_bias_kv={m.bias_k is not None}"
            )
        d = m.embed_dim
        src = self.inputs(d, "neuron", False, name, "input features")
        self.layer += 1
        att = self.new_nodes(d, "attention_neuron", self.layer)
        w = m.in_proj_weight  # [3d, d]: rows of W_q, W_k, W_v
        pid = self.register(_join(name, "in_proj_weight"), w)
        for i, part in enumerate("qkv"):
            self.weight_edges(w[i * d : (i + 1) * d], src, att, f"attention_{part}", pid, offset=i * d * d)
        if m.in_proj_bias is not None:
            pid = self.register(_join(name, "in_proj_bias"), m.in_proj_bias)
            for i, part in enumerate("qkv"):
                b = m.in_proj_bias[i * d : (i + 1) * d]
                self.bias_edges(b, att, "attention_bias", f"attention_{part}_bias", pid, offset=i * d)
        self.cur, self.channel_first = att, False
        self.linear(_join(name, "out_proj"), m.out_proj)

    def residual_block(self, name: str, m: ResidualBlock) -> None:
        inp = self.inputs(m.conv1.in_channels, "conv_channel", True, _join(name, "conv1"), "input channels")
        self.conv(_join(name, "conv1"), m.conv1)
        self.visit(_join(name, "norm1"), m.norm1)
        self.activation(m.act)
        self.conv(_join(name, "conv2"), m.conv2)
        self.visit(_join(name, "norm2"), m.norm2)
        out, out_layer = self.cur, self.layer
        self.cur, self.channel_first = inp, True
        self.visit(_join(name, "shortcut"), m.shortcut)
        self.residual(self.cur, out, name, out_layer)
        self.cur, self.channel_first = out, True
        self.activation(m.act)

    def transformer_block(self, name: str, m: TransformerBlock) -> None:
        inp = self.inputs(m.norm1.normalized_shape[0], "neuron", False, _join(name, "norm1"), "input features")
        self.visit(_join(name, "norm1"), m.norm1)
        self.attention(_join(name, "attn"), m.attn)
        mid = self.cur
        self.residual(inp, mid, _join(name, "attn"))
        self.visit(_join(name, "norm2"), m.norm2)
        self.linear(_join(name, "lin1"), m.lin1)
        self.activation(m.act)
        self.linear(_join(name, "lin2"), m.lin2)
        self.residual(mid, self.cur, _join(name, "lin2"))

    def deepsets(self, name: str, m: DeepSetsLayer) -> None:
        src = self.inputs(m.lin1.in_features, "deepsets_neuron", False, name, "input features")
        self.layer += 1
        out = self.new_nodes(m.lin1.out_features, "deepsets_neuron", self.layer)
        pid = self.register(_join(name, "lin1.weight"), m.lin1.weight)
        self.weight_edges(m.lin1.weight, src, out, "deepsets_1", pid)
        if m.lin1.bias is not None:
            pid = self.register(_join(name, "lin1.bias"), m.lin1.bias)
            self.bias_edges(m.lin1.bias, out, "deepsets_bias", "deepsets_bias", pid)
        pid = self.register(_join(name, "lin2.weight"), m.lin2.weight)
        self.weight_edges(m.lin2.weight, src, out, "deepsets_2", pid)
        if m.lin2.bias is not None:
            raise TypeError(f"DeepSetsLayer {name}: lin2 must have no bias (lin1 carries it)")
        self.cur, self.channel_first = out, False

    def group_linear(self, name: str, m: GroupEquivariantLinear) -> None:
        src = self.inputs(m.weight.shape[1], "group_channel", True, name, "input channels")
        self.layer += 1
        out = self.new_nodes(m.weight.shape[0], "group_channel", self.layer)
        self.weight_edges(m.weight, src, out, "group", self.register(_join(name, "weight"), m.weight))
        if m.bias is not None:
            self.bias_edges(m.bias, out, "group_bias", "group_bias", self.register(_join(name, "bias"), m.bias))
        self.cur, self.channel_first = out, True


def to_graph(module: nn.Module | Iterable[nn.Module]) -> Data:
    """The parameter graph of ``module`` (schema in the module docstring).

    Args:
        module: an ``nn.Sequential`` / ``nn.ModuleList`` (nesting allowed), a list of modules, or one supported
            layer or block.

    Returns:
        ``torch_geometric.data.Data`` with ``x [N, 3]``, ``edge_index [2, E]``, ``edge_attr [E, 6]``, ``edge_param
        [E]``, ``edge_flat [E]``, ``act [N]``, ``param_names``, ``param_shapes`` and ``num_nodes``.

    Raises:
        TypeError: a module with parameters that is not supported (its qualified name and type are named).
        ValueError: widths of consecutive layers that do not fit, shared or uninitialised parameters.
    """
    try:
        from torch_geometric.data import Data
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("to_graph needs torch_geometric; install the extra: `pip install zoo[graph]`") from e
    if not isinstance(module, nn.Module):
        module = nn.ModuleList(list(module))
    b = _Builder()
    b.visit("", module)
    missing = [n for n, p in module.named_parameters() if id(p) not in b.seen]
    if missing:
        raise TypeError(
            f"to_graph could not place parameter(s) {missing[:5]} of {type(module).__name__}: a supported module "
            f"holds parameters the schema does not know (supported: {_SUPPORTED})"
        )
    if b.cur is None:
        raise ValueError(f"{type(module).__name__} holds no parameters: there is no graph to build")
    x = torch.cat(b.nodes)
    x[b.cur, 1] = torch.arange(b.cur.numel())  # output neurons get their order
    act = torch.zeros(b.num_nodes, dtype=torch.long)
    for ids, a in b.acts:
        act[ids] = a
    dtype = torch.float32
    for p in b.tensors:
        dtype = torch.promote_types(dtype, p.dtype)
    return Data(
        x=x,
        edge_index=torch.stack([torch.cat(b.src), torch.cat(b.dst)]),
        edge_attr=torch.cat(b.attr).to(dtype),
        edge_param=torch.cat(b.param),
        edge_flat=torch.cat(b.flat),
        act=act,
        param_names=b.names,
        param_shapes=[list(p.shape) for p in b.tensors],
        num_nodes=b.num_nodes,
    )


def from_graph(graph: Data, module: nn.Module, values: Tensor | None = None) -> nn.Module:
    """Write edge values back into ``module``'s parameters, in place (the inverse of ``to_graph``).

    Args:
        graph: a ``Data`` made by ``to_graph`` (one graph; take ``batch.get_example(i)`` from a batch).
        module: a network whose named parameters have exactly the names and shapes recorded in the graph
            (``graph.param_names`` / ``graph.param_shapes``), e.g. a fresh instance of the same architecture.
        values: ``[E]`` or ``[E, 1]`` edge values to write (e.g. a metanetwork's edge outputs); default
            ``graph.edge_attr[:, 0]``. Residual edges are ignored.

    Returns:
        ``module``, with every parameter overwritten (exactly, when the values have the parameters' dtype).

    Raises:
        ValueError: a batched graph, a graph without the parameter record, parameters that differ in name or shape,
            values of the wrong length, or an edge record that does not cover every parameter element exactly once.
    """
    names = getattr(graph, "param_names", None)
    shapes = getattr(graph, "param_shapes", None)
    if names is None or shapes is None or getattr(graph, "edge_param", None) is None:
        raise ValueError("from_graph needs a graph made by zoo.gmn.to_graph (param_names, param_shapes, edge_param)")
    if names and isinstance(names[0], list):
        raise ValueError(f"from_graph takes one graph, got a batch of {len(names)}; use batch.get_example(i)")
    params = dict(module.named_parameters())
    want = {n: tuple(s) for n, s in zip(names, shapes)}
    have = {n: tuple(p.shape) for n, p in params.items()}
    if want != have:
        missing = sorted(set(want) - set(have))[:5]
        extra = sorted(set(have) - set(want))[:5]
        shape = [f"{n}: graph {want[n]} vs module {have[n]}" for n in want if n in have and want[n] != have[n]][:5]
        raise ValueError(
            f"the graph belongs to another architecture than {type(module).__name__}: missing in the module "
            f"{missing}, not in the graph {extra}, shape mismatches {shape}; build the module the graph came from"
        )
    e = graph.edge_index.shape[1]
    if values is None:
        values = graph.edge_attr[:, 0]
    elif values.dim() == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.shape != (e,):
        raise ValueError(f"expected values of shape [{e}] or [{e}, 1] (one per edge), got {tuple(values.shape)}")
    keep = graph.edge_param >= 0
    pid, flat, vals = graph.edge_param[keep], graph.edge_flat[keep], values[keep].detach()
    order = torch.argsort(pid, stable=True)
    counts = torch.bincount(pid, minlength=len(names)).tolist()
    with torch.no_grad():
        for name, flat_p, val_p in zip(names, flat[order].split(counts), vals[order].split(counts)):
            p = params[name]
            if not torch.equal(torch.sort(flat_p).values, torch.arange(p.numel())):
                raise ValueError(f"the graph's edges do not cover every element of {name} exactly once")
            new = torch.empty(p.numel(), dtype=p.dtype, device=p.device)
            new[flat_p.to(p.device)] = val_p.to(device=p.device, dtype=p.dtype)
            p.copy_(new.view_as(p))
    return module
