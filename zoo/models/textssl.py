r"""TextSSL: sparse structure learning over per-document sentence graphs, and its two baselines.

Paper: Yinhua Piao, Sangseon Lee, Dohoon Lee, Sun Kim, "Sparse Structure Learning via Graph Neural Networks for
Inductive Document Classification", AAAI 2022, arXiv:2112.06386. Official code: https://github.com/qkrdmsghk/TextSSL
(MIT); this is an independent implementation from the paper and ``../shared/papers/textssl.md``.

The network reads the graphs of ``zoo.textssl.graph.document_graph`` (one per document, batched by PyG):

1. x = Dropout(ReLU(W_in · Dropout(e_word) + b)), e_word = the node's word vector (a frozen fp16 or int8 table inside
   the checkpoint, so that the vocabulary and its vectors travel with the weights).
2. L GCN layers (symmetric normalisation, self-loops of weight 1 added by the layer): x ← ReLU(GCN_l(x, A)). A holds
   the intra-sentence edges (weight 1, or the co-occurrence weight with ``edge_weights="cooc"``) and the candidate
   edges between adjacent sentences with their current weights (0 at the start: absent).
3. Structure learning after every layer but the last (``structure="gumbel"``, TextSSL): for every edge i → j of A
   except self-loops, s_ij = LeakyReLU(a_lᵀ [x_i ‖ x_j]) + w_ij; p = softmax of s over the edges entering j; a
   candidate's new weight is a hard binary-concrete sample at temperature τ with straight-through gradients,
   1[y > ½] − sg(y) + y, y ~ RelaxedBernoulli(τ, p). Intra edges keep their weight. The hard sample is exactly
   Bernoulli(p), so on average one edge enters each node: the learned structure is sparse.
4. Readout: g = Σ_v ReLU(W_r x_v + b_r) (sum over the document's nodes), Dropout, logits = W_o g + b_o.

Baselines: ``structure="none"`` on the ``"sentence"`` graph is the disjoint sentence-graph GCN (candidates never
used); on the ``"document"`` graph it is WordCooc (one co-occurrence graph per document).

Choices where the official code is silent or differs (stated on the cards):

* **Evaluation** uses the expected structure (candidate weight = p, the mean of the hard sample) so that
  ``zoo eval`` is deterministic; the official code samples at test time too (``eval_structure="sample"`` does).
* **Self-loops** always take part in the GCN normalisation with weight 1 and are never sampled (the official code
  adds them with weight 0 and samples them like candidates).
* **Candidates** run from sentence s to s + 1 only, as in the official code.
* No regulariser: the official ``_reg`` variant never back-propagates its KL term, and the paper's main model is
  the variant without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TextSSLConfig", "TextSSLNet", "STRUCTURES"]

STRUCTURES = ("gumbel", "none")
VECTOR_DTYPES = ("float16", "int8")


@dataclass
class TextSSLConfig:
    """Architecture of a TextSSL network; every value is JSON-able.

    Args:
        vocab: the words of the embedding table in row order (row 0 is ``"<unk>"``); empty until the data module
            fills it (``TextSSLModule.setup``).
        embed_dim: word-vector width (384 for MiniLM vectors, 300 for word2vec / GloVe).
        num_classes: number of document classes.
        hidden: GCN width.
        layers: GCN layers L ≥ 1 (structure learning happens between them).
        dropout: dropout on the word vectors, after the input layer and before the classifier.
        structure: ``"gumbel"`` (TextSSL) or ``"none"`` (baselines).
        temperature: τ of the binary-concrete relaxation.
        eval_structure: ``"expected"`` (candidate weight p at evaluation, deterministic) or ``"sample"``.
        edge_weights: ``"binary"`` (intra edges weigh 1, the paper's structure learner) or ``"cooc"``
            (co-occurrence weights).
        vectors: name of the word-vector source (provenance only: ``minilm``, ``word2vec``, ``glove``, ``random``).
        vector_dtype: how the frozen table is stored: ``"float16"``, or ``"int8"`` (symmetric per-row quantisation,
            one fp32 scale per word, half the size: for wide tables such as the 960-d ``minilm+smollm2`` ones). The
            network always reads the stored values, in training too, so a checkpoint predicts as it was trained.
        graph: the document graph the network reads (``"sentence"`` or ``"document"``) and ``window`` its
            co-occurrence window: raw-text prediction builds graphs with them.
    """

    DATA_FIELDS = ("vocab",)  # set from the training data, not by a registry builder (a ClassVar: not a field)

    vocab: list[str] = field(default_factory=list)
    embed_dim: int = 384
    num_classes: int = 2
    hidden: int = 96
    layers: int = 2
    dropout: float = 0.5
    structure: str = "gumbel"
    temperature: float = 0.01
    eval_structure: str = "expected"
    edge_weights: str = "binary"
    vectors: str = "minilm"
    vector_dtype: str = "float16"
    graph: str = "sentence"
    window: int = 3

    def __post_init__(self) -> None:
        if self.structure not in STRUCTURES:
            raise ValueError(f"expected structure in {STRUCTURES}, got {self.structure!r}")
        if self.eval_structure not in ("expected", "sample"):
            raise ValueError(f"expected eval_structure 'expected' or 'sample', got {self.eval_structure!r}")
        if self.vector_dtype not in VECTOR_DTYPES:
            raise ValueError(f"expected vector_dtype in {VECTOR_DTYPES}, got {self.vector_dtype!r}")
        if self.edge_weights not in ("binary", "cooc"):
            raise ValueError(f"expected edge_weights 'binary' or 'cooc', got {self.edge_weights!r}")
        if self.layers < 1 or self.hidden < 1 or self.num_classes < 2:
            raise ValueError(
                f"expected layers >= 1, hidden >= 1, num_classes >= 2; got {self.layers}, {self.hidden}, "
                f"{self.num_classes}"
            )
        if not self.temperature > 0:
            raise ValueError(f"expected temperature > 0, got {self.temperature}")

    def to_dict(self) -> dict:
        return asdict(self)


class TextSSLNet(nn.Module):
    """TextSSL / disjoint / WordCooc classifier over batched document graphs (see the module docstring).

    Args:
        config: the architecture; ``config.vocab`` sets the size of the word-vector table.
        vectors: optional ``[len(vocab), embed_dim]`` initial word vectors (stored in ``config.vector_dtype``, frozen).
    """

    def __init__(self, config: TextSSLConfig, vectors: Tensor | None = None) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        self.config = c = config
        n_words = max(len(c.vocab), 1)
        int8 = c.vector_dtype == "int8"
        table = torch.zeros(n_words, c.embed_dim, dtype=torch.int8 if int8 else torch.float16)
        scale = torch.ones(n_words) if int8 else None
        if vectors is not None:
            if tuple(vectors.shape) != (n_words, c.embed_dim):
                raise ValueError(
                    f"expected word vectors of shape ({n_words}, {c.embed_dim}) (vocab × embed_dim), got "
                    f"{tuple(vectors.shape)}"
                )
            if int8:
                v = vectors.float()
                scale = v.abs().amax(1).clamp_min(1e-12) / 127
                table.copy_(torch.round(v / scale[:, None]).clamp_(-127, 127).to(torch.int8))
            else:
                table.copy_(vectors.to(torch.float16))
        self.register_buffer("embedding", table)
        self.register_buffer("embedding_scale", scale)  # None (absent from the state dict) for float16
        self.inp = nn.Linear(c.embed_dim, c.hidden)
        self.convs = nn.ModuleList(GCNConv(c.hidden, c.hidden) for _ in range(c.layers))
        # a_l = [a_src ‖ a_dst] per structure-learning step
        self.att = nn.ParameterList(nn.Parameter(torch.empty(2, c.hidden)) for _ in range(c.layers - 1))
        for a in self.att:
            nn.init.xavier_uniform_(a)
        self.readout = nn.Linear(c.hidden, c.hidden)
        self.classifier = nn.Linear(c.hidden, c.num_classes)

    def word_vectors(self, word: Tensor) -> Tensor:
        """The stored vectors of word ids ``word`` as float32 ``[len(word), embed_dim]``."""
        x = self.embedding[word].float()
        return x if self.embedding_scale is None else x * self.embedding_scale[word, None]

    def forward(self, data, return_structure: bool = False):
        """Logits ``[num_graphs, num_classes]``; with ``return_structure`` also the candidate weights ``[C]`` that
        the last layer used (None for ``structure="none"``)."""
        from torch_geometric.nn import global_add_pool

        c = self.config
        word = data.word
        if word.numel() and int(word.max()) >= self.embedding.shape[0]:
            raise ValueError(
                f"word id {int(word.max())} is outside the vocabulary of {self.embedding.shape[0]} words; build the "
                "graphs with this checkpoint's vocabulary"
            )
        x = F.dropout(self.word_vectors(word), c.dropout, self.training)
        x = F.dropout(F.relu(self.inp(x)), c.dropout, self.training)
        ei = data.edge_index
        ew = data.edge_weight if c.edge_weights == "cooc" else torch.ones(ei.shape[1], device=x.device)
        cand = getattr(data, "cand_index", None)
        learn = c.structure == "gumbel" and cand is not None and cand.shape[1] > 0
        cw = x.new_zeros(cand.shape[1]) if learn else None
        for layer, conv in enumerate(self.convs):
            if learn and layer > 0:
                x = F.relu(conv(x, torch.cat([ei, cand], 1), torch.cat([ew, cw])))
            else:
                x = F.relu(conv(x, ei, ew))
            if learn and layer < c.layers - 1:
                cw = self._structure(layer, x, ei, ew, cand, cw)
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        g = global_add_pool(F.relu(self.readout(x)), batch, size=getattr(data, "num_graphs", None))
        logits = self.classifier(F.dropout(g, c.dropout, self.training))
        return (logits, cw) if return_structure else logits

    def edge_probabilities(self, layer: int, x: Tensor, ei: Tensor, ew: Tensor, cand: Tensor, cw: Tensor) -> Tensor:
        """p over all edges (intra first, then candidates), a softmax per target node: ``[E + C]``."""
        from torch_geometric.utils import softmax

        src = torch.cat([ei[0], cand[0]])
        dst = torch.cat([ei[1], cand[1]])
        a = self.att[layer]
        score = F.leaky_relu(x[src] @ a[0] + x[dst] @ a[1]) + torch.cat([ew, cw])
        return softmax(score, dst, num_nodes=x.shape[0])

    def _structure(self, layer: int, x: Tensor, ei: Tensor, ew: Tensor, cand: Tensor, cw: Tensor) -> Tensor:
        p = self.edge_probabilities(layer, x, ei, ew, cand, cw)[ei.shape[1] :]
        if not self.training and self.config.eval_structure == "expected":
            return p
        return hard_concrete(p, self.config.temperature)


def hard_concrete(p: Tensor, temperature: float, generator: torch.Generator | None = None) -> Tensor:
    """Straight-through binary-concrete sample: forward values in {0, 1} distributed as Bernoulli(p), backward the
    gradient of the relaxed sample y ~ RelaxedBernoulli(τ, p)."""
    p = p.clamp(1e-6, 1 - 1e-6)
    u = torch.rand(p.shape, generator=generator, device=p.device, dtype=p.dtype).clamp(1e-6, 1 - 1e-6)
    y = torch.sigmoid((torch.log(p) - torch.log1p(-p) + torch.log(u) - torch.log1p(-u)) / temperature)
    hard = (y > 0.5).to(y.dtype)
    return hard - y.detach() + y


from zoo.registry import Family, register_family, register_model  # noqa: E402

register_family(
    Family(
        name="textssl",
        module="zoo.methods.textssl:TextSSLModule",
        datamodule="zoo.textssl.data:TextSSLDataModule",
        paper={
            "title": "Sparse Structure Learning via Graph Neural Networks for Inductive Document Classification",
            "arxiv": "2112.06386",
            "authors": ["Yinhua Piao", "Sangseon Lee", "Dohoon Lee", "Sun Kim"],
            "year": 2022,
            "url": "https://ojs.aaai.org/index.php/AAAI/article/view/21366",
        },
        license="mit",
        upstream="https://github.com/qkrdmsghk/TextSSL",
        citation="""@inproceedings{piao2022sparse,
  title     = {Sparse Structure Learning via Graph Neural Networks for Inductive Document Classification},
  author    = {Piao, Yinhua and Lee, Sangseon and Lee, Dohoon and Kim, Sun},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {36},
  number    = {10},
  pages     = {11165--11173},
  year      = {2022}
}""",
        extra="graph",
        card="zoo.methods.textssl:card_sections",
    )
)

_TAGS = ["text-classification", "graph-neural-network", "structure-learning"]


@register_model(
    family="textssl",
    dataset="r8",
    data={"dataset": "r8"},
    metric="accuracy",
    recipe="recipes/textssl/r8.yaml",
    sha256="649308dfc1568821e489b14885cf25903d3bbe510f0c1f83b67be2aa11808cc1",
    summary="TextSSL on R8 (Reuters, 8 classes): learned sparse inter-sentence edges, word2vec word vectors.",
    tags=_TAGS,
)
def textssl_r8(**overrides) -> TextSSLConfig:
    return TextSSLConfig(**({"hidden": 96, "num_classes": 8, "embed_dim": 300, "vectors": "word2vec"} | overrides))


@register_model(
    family="textssl",
    dataset="mr",
    data={"dataset": "mr"},
    metric="accuracy",
    recipe="recipes/textssl/mr.yaml",
    sha256="5a9edccd9b96cc07a0a4522f55aa64d6dc8717c1e26d7846db03a0ccba96ceb6",
    summary="TextSSL on MR (movie-review polarity): learned sparse inter-sentence edges, MiniLM and SmolLM2 word "
    "vectors side by side.",
    tags=_TAGS,
)
def textssl_mr(**overrides) -> TextSSLConfig:
    base = {"hidden": 96, "num_classes": 2, "embed_dim": 960, "vectors": "minilm+smollm2", "vector_dtype": "int8"}
    return TextSSLConfig(**(base | overrides))
