"""TextSSL document graphs and network against the oracles of ../shared/papers/textssl.md."""

import pytest
import torch

pytest.importorskip("torch_geometric")
from torch_geometric.data import Batch  # noqa: E402

from zoo.models.textssl import TextSSLConfig, TextSSLNet, hard_concrete  # noqa: E402
from zoo.textssl.graph import cooccurrence, document_graph  # noqa: E402

A, B, C, D, E = range(1, 6)
DOC = [[A, B, C, D], [B, E], [C, A, E, A]]  # three sentences; word A repeats inside the last one


def edges(data):
    return {(int(s), int(t)): float(w) for (s, t), w in zip(data.edge_index.t(), data.edge_weight)}


def test_cooccurrence_window_oracle():
    counts, windows = cooccurrence([A, B, C, D], 3)
    assert windows == 2
    expect = {(A, B): 1, (A, C): 1, (B, C): 2, (B, D): 1, (C, D): 1}
    assert counts == {**expect, **{(b, a): c for (a, b), c in expect.items()}}
    counts, windows = cooccurrence([A, B], 3)
    assert windows == 1 and counts == {(A, B): 1, (B, A): 1}
    with pytest.raises(ValueError, match="at least 2"):
        cooccurrence([A, B], 1)


def test_sentence_graph_nodes_edges_and_candidates():
    g = document_graph(DOC, "sentence")
    sizes = [len(set(s)) for s in DOC]
    assert g.num_nodes == sum(sizes) == 4 + 2 + 3
    assert g.sent.tolist() == [0] * 4 + [1] * 2 + [2] * 3
    assert g.cand_index.shape[1] == sizes[0] * sizes[1] + sizes[1] * sizes[2]
    assert (g.sent[g.cand_index[1]] - g.sent[g.cand_index[0]] == 1).all()  # s -> s + 1 only
    assert (g.cand_index[0] < g.cand_index[1]).all()
    assert (g.sent[g.edge_index[0]] == g.sent[g.edge_index[1]]).all()  # intra edges stay inside a sentence
    first = edges(g)
    # sentence 0 is "a b c d": weights count / 2 windows, both directions; node i of sentence 0 is word i + 1
    assert first[(1, 2)] == first[(2, 1)] == 1.0 and first[(0, 1)] == 0.5 and (0, 3) not in first
    # sentence 2 "c a e a": one node per distinct word, windows (c a e) and (a e a)
    w = {int(i): int(g.word[i]) for i in range(6, 9)}
    node = {v: k for k, v in w.items()}
    assert first[(node[A], node[E])] == 1.0 and first[(node[C], node[E])] == 0.5


def test_document_graph_is_the_union_and_equals_sentence_graph_for_one_sentence():
    g = document_graph(DOC, "document")
    assert g.word.tolist() == [A, B, C, D, E] and g.cand_index.shape[1] == 0
    one = [[A, B, C, D, B]]
    s, d = document_graph(one, "sentence"), document_graph(one, "document")
    assert torch.equal(s.word, d.word) and edges(s) == edges(d) and s.cand_index.shape[1] == 0


def test_degenerate_documents():
    g = document_graph([[A], [B, C], [D, D]], "sentence")  # sentences without a pair are dropped
    assert g.word.tolist() == [B, C] and g.cand_index.shape[1] == 0
    g = document_graph([[A]], "sentence")  # nothing left: the first sentence stays, as an isolated node
    assert g.num_nodes == 1 and g.edge_index.shape[1] == 0
    with pytest.raises(ValueError, match="non-empty sentence"):
        document_graph([[], []])
    with pytest.raises(ValueError, match="expected graph"):
        document_graph(DOC, "corpus")


def net(structure="gumbel", **kw):
    torch.manual_seed(0)
    cfg = TextSSLConfig(vocab=[str(i) for i in range(8)], embed_dim=12, num_classes=3, hidden=16, layers=3,
                        dropout=0.0, structure=structure, **kw)  # fmt: skip
    return TextSSLNet(cfg, torch.randn(8, 12)).eval()


def test_softmax_per_target_node_sums_to_one():
    m, g = net(), document_graph(DOC, "sentence")
    x = torch.randn(g.num_nodes, 16)
    ei, cand = g.edge_index, g.cand_index
    p = m.edge_probabilities(0, x, ei, torch.ones(ei.shape[1]), cand, torch.zeros(cand.shape[1]))
    dst = torch.cat([ei[1], cand[1]])
    sums = torch.zeros(g.num_nodes).index_add_(0, dst, p)
    has_in = torch.zeros(g.num_nodes, dtype=torch.bool)
    has_in[dst] = True
    torch.testing.assert_close(sums[has_in], torch.ones(int(has_in.sum())))


def test_hard_concrete_straight_through_and_mean():
    p = torch.tensor([0.05, 0.3, 0.5, 0.9], requires_grad=True)
    g = torch.Generator().manual_seed(0)
    s = hard_concrete(p, 0.5, generator=g)
    assert set(s.detach().unique().tolist()) <= {0.0, 1.0}
    s.sum().backward()  # the gradient is that of the relaxed sample
    g = torch.Generator().manual_seed(0)
    p2 = p.detach().clone().requires_grad_(True)
    u = torch.rand(4, generator=g).clamp(1e-6, 1 - 1e-6)
    y = torch.sigmoid((torch.log(p2) - torch.log1p(-p2) + torch.log(u) - torch.log1p(-u)) / 0.5)
    y.sum().backward()
    torch.testing.assert_close(p.grad, p2.grad)
    for tau in (0.01, 1.0):  # the hard sample is Bernoulli(p) whatever τ
        g = torch.Generator().manual_seed(1)
        mean = hard_concrete(p.detach().expand(20000, 4), tau, generator=g).mean(0)
        torch.testing.assert_close(mean, p.detach(), atol=0.015, rtol=0)


def test_zero_candidates_is_the_disjoint_baseline():
    batch = Batch.from_data_list([document_graph(DOC, "sentence", label=1), document_graph([[C, D, E]], label=0)])
    learned, plain = net("gumbel"), net("none")
    plain.load_state_dict(learned.state_dict())
    learned._structure = lambda layer, x, ei, ew, cand, cw: torch.zeros_like(cw)
    torch.testing.assert_close(learned(batch), plain(batch))
    full = net("gumbel")  # all candidates kept = GCN on the complete adjacent-sentence graph
    full._structure = lambda layer, x, ei, ew, cand, cw: torch.ones_like(cw)
    assert not torch.allclose(full(batch), plain(batch))


def test_expected_structure_is_deterministic_and_sampling_is_not():
    batch = Batch.from_data_list([document_graph(DOC, label=1)])
    m = net()
    torch.testing.assert_close(m(batch), m(batch))
    logits, cw = m(batch, return_structure=True)
    assert cw.shape[0] == batch.cand_index.shape[1] and ((cw > 0) & (cw < 1)).all()
    m.train()
    torch.manual_seed(3)
    _, hard = m(batch, return_structure=True)
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}


def test_node_relabelling_and_batching_leave_logits_unchanged():
    m = net()
    g = document_graph(DOC, label=2)
    perm = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm))
    h = g.clone()
    h.word, h.sent = g.word[perm], g.sent[perm]
    h.edge_index, h.cand_index = inv[g.edge_index], inv[g.cand_index]
    one = m(Batch.from_data_list([g]))
    torch.testing.assert_close(m(Batch.from_data_list([h])), one)
    other = document_graph([[E, D, C], [A, B]], label=0)
    torch.testing.assert_close(m(Batch.from_data_list([other, g, other]))[1:2], one)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="structure"):
        TextSSLConfig(structure="sparsemax")
    with pytest.raises(ValueError, match="temperature"):
        TextSSLConfig(temperature=0)
    with pytest.raises(ValueError, match="shape"):
        TextSSLNet(TextSSLConfig(vocab=["a", "b"], embed_dim=4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="vector_dtype"):
        TextSSLConfig(vector_dtype="int4")
    m = net()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m(Batch.from_data_list([document_graph([[A, 9]])]))


def test_int8_table_is_per_word_quantised_and_read_in_training_and_evaluation():
    scales = torch.tensor([[0.01], [1], [2], [3], [4], [50]])
    vectors = torch.randn(6, 8, generator=torch.Generator().manual_seed(0)) * scales
    config = dict(vocab=list("uabcde"), embed_dim=8, hidden=8, num_classes=3)
    q = TextSSLNet(TextSSLConfig(**config, vector_dtype="int8"), vectors)
    h = TextSSLNet(TextSSLConfig(**config), vectors)
    assert q.embedding.dtype == torch.int8 and q.embedding_scale.shape == (6,)
    assert "embedding_scale" in q.state_dict() and "embedding_scale" not in h.state_dict()
    words = torch.arange(6)
    read = q.word_vectors(words)
    # per-row absmax scale: every row keeps its largest entry exactly and errs by at most half a step elsewhere
    assert (read - vectors).abs().le(q.embedding_scale[:, None] / 2 + 1e-7).all()
    torch.testing.assert_close(read.abs().amax(1), vectors.abs().amax(1))
    assert torch.equal(h.word_vectors(words), vectors.half().float())
    # a fresh int8 net loads the quantised state exactly (what from_pretrained does)
    fresh = TextSSLNet(TextSSLConfig(**config, vector_dtype="int8"))
    fresh.load_state_dict(q.state_dict())
    batch = Batch.from_data_list([document_graph([[1, 2, 3], [4, 5]], label=0)])
    q.eval(), fresh.eval()
    torch.testing.assert_close(fresh(batch), q(batch), rtol=0, atol=0)
