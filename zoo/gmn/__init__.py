"""Graph Metanetworks (arXiv:2312.04501): parameter graphs of neural networks and their inverse.

``to_graph(module)`` turns a network into a ``torch_geometric.data.Data`` with one edge per parameter,
``from_graph(graph, module)`` writes edge values back into a network's parameters; the schema, the supported
layers and the blocks (``ResidualBlock``, ``FFNBlock``, ``TransformerBlock``, ``DeepSetsLayer``,
``GroupEquivariantLinear``) are documented in ``zoo.gmn.graph``. The metanetworks that read these graphs are in
``zoo.models.gmn``. Importing this package needs only torch; torch_geometric is imported by ``to_graph``.
"""

from zoo.gmn.graph import (
    ACTIVATIONS,
    EDGE_TYPES,
    NODE_TYPES,
    NUM_ACTIVATIONS,
    NUM_EDGE_TYPES,
    NUM_NODE_TYPES,
    DeepSetsLayer,
    FFNBlock,
    GroupEquivariantLinear,
    ResidualBlock,
    TransformerBlock,
    from_graph,
    to_graph,
)

__all__ = [
    "to_graph",
    "from_graph",
    "ResidualBlock",
    "FFNBlock",
    "TransformerBlock",
    "DeepSetsLayer",
    "GroupEquivariantLinear",
    "NODE_TYPES",
    "EDGE_TYPES",
    "ACTIVATIONS",
    "NUM_NODE_TYPES",
    "NUM_EDGE_TYPES",
    "NUM_ACTIVATIONS",
]
