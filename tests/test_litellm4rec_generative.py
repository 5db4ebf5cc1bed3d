"""The P5-style generative baseline of litellm4rec (``zoo.litellm4rec.generative``): identifier trie, constrained
beam search against independent teacher-forced computations (with and without the per-user pruning of seen items),
the loss, and the KV cache under left padding.

Every test uses the random ``"tiny-llama"`` backbone (ByT5's byte tokenizer) and a catalogue of 9 or 30 items.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from zoo.litellm4rec.generative import DIGITS, SEPARATOR, GenerativeRecNet, _identifier_tokens, build_trie
from zoo.models.litellm4rec import LiteLLM4RecConfig


def make_net(num_items: int = 30, beam: int = 10, tuning: str = "full", seed: int = 0) -> GenerativeRecNet:
    torch.manual_seed(seed)
    config = LiteLLM4RecConfig(arch="generative", num_items=num_items, rec_backbone="tiny-llama", rec_layers=None,
                               rec_tuning=tuning, beam=beam, max_len=12)  # fmt: skip
    return GenerativeRecNet(config).eval()


def left_pad(rows: list[list[int]], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for r, row in enumerate(rows):
        if row:
            out[r, length - len(row) :] = torch.tensor(row)
    return out


def text_ids(net: GenerativeRecNet, text: str) -> torch.Tensor:
    """Token ids ``[1, T]`` of a text, through the tokenizer (independent of the net's identifier tables)."""
    return torch.tensor([net.tokenizer.encode(text, add_special_tokens=False)])


def prompt(history: list[int]) -> str:
    return SEPARATOR + "".join(f"{i}{SEPARATOR}" for i in history)


@torch.no_grad()
def exact_logprob(net: GenerativeRecNet, history: list[int], item: int, seen: tuple[int, ...] = ()) -> float:
    """Log-probability of ``item`` after ``history`` by teacher forcing through the full causal LM: at each token of
    the identifier, the softmax over the characters that some identifier allows after the prefix — with ``seen``,
    some identifier of an item not in ``seen`` (the pruned trie)."""
    words = [f"{i}{SEPARATOR}" for i in range(1, net.num_items + 1) if i not in seen]
    text, word = prompt(history), f"{item}{SEPARATOR}"
    logits = net.lm(input_ids=text_ids(net, text + word)).logits[0]
    total = 0.0
    for j, ch in enumerate(word):
        allowed = sorted({w[j] for w in words if w.startswith(word[:j]) and len(w) > j})
        ids = [net.tokenizer.encode(c, add_special_tokens=False)[0] for c in allowed]
        logp = logits[len(text) + j - 1, ids].log_softmax(0)
        total += float(logp[allowed.index(ch)])
    return total


# -- identifiers and trie --------------------------------------------------------------------------------------------
def walk(next_node: torch.Tensor, symbols: list[int]) -> int:
    node = 0
    for s in symbols:
        node = int(next_node[node, s])
        if node < 0:
            return -1
    return node


@pytest.mark.parametrize("num_items", [9, 30, 123])
def test_trie_identifiers_are_distinct_and_complete(num_items):
    symbols, next_node, leaf_item = build_trie(num_items)
    assert symbols.shape == (num_items + 1, len(str(num_items)) + 1)
    assert (symbols[0] == -1).all()
    for item in range(1, num_items + 1):
        word = [int(d) for d in str(item)] + [10]
        assert symbols[item, : len(word)].tolist() == word and (symbols[item, len(word) :] == -1).all()
        node = walk(next_node, word)
        assert int(leaf_item[node]) == item
        for j in range(len(word)):  # no proper prefix is a leaf
            assert int(leaf_item[walk(next_node, word[:j])]) == 0
    # exhaustively: a symbol sequence ends at a leaf exactly when it is an item's identifier
    words = {tuple(int(d) for d in str(i)) + (10,): i for i in range(1, num_items + 1)}
    for n in range(1, symbols.shape[1] + 1):
        for seq in itertools.product(range(11), repeat=n):
            node = walk(next_node, seq)
            reached = int(leaf_item[node]) if node >= 0 else 0
            assert reached == words.get(seq, 0), seq
    leaves = leaf_item > 0
    assert sorted(leaf_item[leaves].tolist()) == list(range(1, num_items + 1))
    assert (next_node[leaves] == -1).all()  # an identifier ends with its separator
    assert (next_node[~leaves] >= 0).any(1).all()  # every inner node leads to an item
    if num_items >= 12:  # "1," and "12," are distinct; "1" is an inner node
        one, twelve = walk(next_node, [1]), walk(next_node, [1, 2])
        assert int(leaf_item[one]) == 0 and int(leaf_item[twelve]) == 0
        assert int(leaf_item[next_node[one, 10]]) == 1 and int(leaf_item[next_node[twelve, 10]]) == 12


def test_identifier_tokens_and_sequences():
    net = make_net(num_items=30)
    expected = [net.tokenizer.encode(c, add_special_tokens=False)[0] for c in DIGITS + SEPARATOR]
    assert net.id_tokens.tolist() == expected
    sym, mask, target = net.sequences(torch.tensor([[0, 3, 12, 7], [0, 0, 0, 5]]), torch.tensor([[0, 0, 1, 1]] * 2) > 0)
    chars = DIGITS + SEPARATOR
    texts = ["".join(chars[s] for s, m in zip(row, mrow) if m) for row, mrow in zip(sym.tolist(), mask.tolist())]
    assert texts == [",3,12,7,", ",5,"]
    assert mask.tolist() == [[1] * 8, [0] * 5 + [1] * 3]  # left-padded
    assert target.tolist() == [[False] * 3 + [True] * 5, [False] * 6 + [True] * 2]

    class SplitTokenizer:
        def encode(self, text, add_special_tokens=False):
            return [1, 2] if text == SEPARATOR else [ord(text)]

    with pytest.raises(ValueError, match="exactly one token"):
        _identifier_tokens(SplitTokenizer(), DIGITS + SEPARATOR)


# -- beam search -----------------------------------------------------------------------------------------------------
def test_topk_returns_valid_unseen_sorted_items():
    net = make_net(num_items=30, beam=12)
    histories = [[3, 12, 7], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [30], []]
    seen = left_pad([h + [11, 21] for h in histories], 12)
    batch = {"input": left_pad(histories, 12), "seen": seen, "target": torch.tensor([4, 11, 22, 9])}
    items, scores = net.topk(batch, 10)
    assert items.shape == scores.shape == (4, 10)
    for row, srow, s in zip(items.tolist(), scores.tolist(), seen.tolist()):
        real = [i for i in row if i]
        assert all(1 <= i <= 30 for i in real) and len(set(real)) == len(real)
        assert not set(real) & (set(s) - {0})
        assert srow == sorted(srow, reverse=True)
        assert all(math.isinf(v) == (i == 0) for i, v in zip(row, srow))
    # ranks: the target's position in topk(batch, beam), num_items + 1 when absent
    full, _ = net.topk(batch, 12)
    for r, row, t in zip(net.ranks(batch).tolist(), full.tolist(), batch["target"].tolist()):
        assert r == (row.index(t) + 1 if t in row else 31)
    with pytest.raises(ValueError, match="beam width"):
        net.topk(batch, 13)
    with pytest.raises(NotImplementedError, match="beam search"):
        net.scores(batch["input"])


def test_single_digit_beam_is_the_top_k_of_the_first_step():
    """With N = 9 every identifier is a digit then the separator (constrained probability 1): beam search of width K
    returns the top K items of the first step's distribution."""
    net = make_net(num_items=9, beam=4)
    histories = [[3, 1, 7], [9], [2, 5, 8, 4, 6]]
    items, scores = net.topk({"input": left_pad(histories, 6)}, 4)
    digit_ids = [net.tokenizer.encode(str(i), add_special_tokens=False)[0] for i in range(1, 10)]
    for h, row, srow in zip(histories, items, scores):
        with torch.no_grad():
            logits = net.lm(input_ids=text_ids(net, prompt(h))).logits[0, -1]
        logp = logits[digit_ids].log_softmax(0)  # items 1..9
        top, idx = logp.topk(4)
        assert row.tolist() == (idx + 1).tolist()
        torch.testing.assert_close(srow, top, atol=1e-5, rtol=0)


def test_wide_beam_equals_exhaustive_search():
    """With beam >= N nothing is pruned: the beam's ranking is all items sorted by their exact sequence probability
    (teacher forcing through the full LM, constrained softmax at each token)."""
    net = make_net(num_items=30, beam=30)
    histories = [[3, 12, 7, 30], [25]]
    items, scores = net.topk({"input": left_pad(histories, 6)}, 30)
    for h, row, srow in zip(histories, items.tolist(), scores.tolist()):
        exact = {i: exact_logprob(net, h, i) for i in range(1, 31)}
        assert sorted(row) == list(range(1, 31))
        torch.testing.assert_close(torch.tensor(srow), torch.tensor([exact[i] for i in row]), atol=1e-4, rtol=0)
        ranking = sorted(exact, key=exact.get, reverse=True)
        for a, b in zip(row, ranking):  # the same order, up to ties within float error
            assert a == b or abs(exact[a] - exact[b]) < 1e-5
        assert math.isclose(sum(math.exp(v) for v in exact.values()), 1.0, rel_tol=1e-4)  # a distribution


def test_wide_beam_with_seen_equals_exhaustive_search_over_unseen_items():
    """With beam >= N and seen items, the search is exhaustive over the *unseen* items, each scored under the pruned
    constrained softmax (at each token, renormalised over the tokens toward a subtree with an unseen item)."""
    net = make_net(num_items=30, beam=30)
    histories = [[3, 12, 7, 30], [25], []]
    seen_rows = [[3, 12, 7, 30, 2, 21], [25, 1, 10, 11, 13, 14, 15, 16, 17, 18, 19], [4]]
    seen = left_pad(seen_rows, 12)
    items, scores = net.topk({"input": left_pad(histories, 6), "seen": seen}, 30)
    raw, _ = net.beam_search(left_pad(histories, 6), seen)
    for h, s, row, srow, rrow in zip(histories, seen_rows, items.tolist(), scores.tolist(), raw.tolist()):
        unseen = [i for i in range(1, 31) if i not in s]
        n = len(unseen)
        assert sorted(row[:n]) == unseen and row[n:] == [0] * (30 - n)  # every unseen item, none seen
        assert sorted(i for i in rrow if i) == unseen  # already in the beam: the final filter removes nothing
        assert all(math.isinf(v) for v in srow[n:])
        exact = {i: exact_logprob(net, h, i, tuple(s)) for i in unseen}
        torch.testing.assert_close(torch.tensor(srow[:n]), torch.tensor([exact[i] for i in row[:n]]), atol=1e-4, rtol=0)
        ranking = sorted(exact, key=exact.get, reverse=True)
        for a, b in zip(row, ranking):
            assert a == b or abs(exact[a] - exact[b]) < 1e-5
        assert math.isclose(sum(math.exp(v) for v in exact.values()), 1.0, rel_tol=1e-4)  # renormalised
    # seen=None and an empty seen tensor are the unpruned search
    plain = net.beam_search(left_pad(histories, 6))
    empty = net.beam_search(left_pad(histories, 6), torch.zeros(3, 0, dtype=torch.long))
    padding = net.beam_search(left_pad(histories, 6), torch.zeros(3, 4, dtype=torch.long))
    for other in (empty, padding):
        assert torch.equal(other[0], plain[0])
        torch.testing.assert_close(other[1], plain[1], atol=1e-6, rtol=0)


def test_user_with_few_unseen_items_gets_exactly_those():
    """A user who has seen all but 3 items gets those 3, best first, then item 0 / -inf; a user who has seen
    everything gets nothing."""
    net = make_net(num_items=30, beam=5)
    keep = [1, 12, 30]  # "3" then only "0" is allowed; "1" then "," or "2"
    seen = left_pad([[i for i in range(1, 31) if i not in keep], list(range(1, 31))], 30)
    histories = [[5, 6], [7]]
    items, scores = net.topk({"input": left_pad(histories, 2), "seen": seen}, 5)
    exact = {i: exact_logprob(net, histories[0], i, tuple(seen[0].tolist())) for i in keep}
    assert sorted(items[0, :3].tolist()) == keep and items[0, 3:].tolist() == [0, 0]
    assert items[0, :3].tolist() == sorted(keep, key=exact.get, reverse=True)
    expected = torch.tensor([exact[i] for i in items[0, :3].tolist()])
    torch.testing.assert_close(scores[0, :3], expected, atol=1e-4, rtol=0)
    assert torch.isinf(scores[0, 3:]).all()
    assert math.isclose(sum(math.exp(v) for v in exact.values()), 1.0, rel_tol=1e-4)
    assert items[1].tolist() == [0] * 5 and torch.isinf(scores[1]).all()
    assert net.unseen_subtrees(seen)[1].sum() == 0  # not even the root


def test_inner_node_with_only_seen_leaves_is_never_entered():
    """seen = items 10..19 (N = 30): the nodes "10" .. "19" lead only to seen items and are pruned, "1" is not (item
    1); no beam emits "1" followed by a digit, and a beam of 20 = the number of unseen items finds them all."""
    net = make_net(num_items=30, beam=20)
    seen = torch.tensor([list(range(10, 20)), [0] * 10])
    # the pruned table against brute force: a node is open iff it is a prefix of an unseen item's identifier
    table = net.unseen_subtrees(seen)
    assert table.shape == (2, net.trie_next.shape[0]) and table[1].all()
    words = {i: [int(d) for d in str(i)] + [10] for i in range(1, 31)}
    open_nodes = {walk(net.trie_next, w[:j]) for i, w in words.items() if not 10 <= i <= 19 for j in range(len(w) + 1)}
    assert set(table[0].nonzero().squeeze(1).tolist()) == open_nodes
    one = walk(net.trie_next, [1])
    assert table[0, one] and table[0, net.trie_next[one, 10]]  # "1" and "1," stay open
    assert not table[0, net.trie_next[one, :10]].any()  # "10" .. "19" are pruned
    assert not table[0, [walk(net.trie_next, words[i]) for i in range(10, 20)]].any()  # and so are their leaves
    # depths: the root 0, "1" 1, "1," and "12" 2, "12," 3
    assert net.trie_depth[0] == 0 and net.trie_depth[one] == 1 and net.trie_depth[walk(net.trie_next, words[12])] == 3
    histories = [[11, 12, 13, 1], [11, 12, 13, 1]]
    items, scores = net.topk({"input": left_pad(histories, 4), "seen": seen}, 20)
    raw, _ = net.beam_search(left_pad(histories, 4), seen)
    assert sorted(items[0].tolist()) == sorted(set(range(1, 31)) - set(range(10, 20)))  # all 20, none wasted
    assert torch.isfinite(scores[0]).all() and torch.equal(raw[0].sort().values, items[0].sort().values)
    assert not any(str(i).startswith("1") and i >= 10 for i in raw[0].tolist())  # never "1" then a digit
    assert any(10 <= i <= 19 for i in items[1].tolist())  # the same user without seen items does go there


def test_pruned_beam_scores_match_teacher_forcing():
    """With beam < N and 4-token identifiers, beams are pruned and reshuffled at every step: each item's score from
    the cached tree decoding still equals its teacher-forced sequence log-probability."""
    net = make_net(num_items=120, beam=6)
    histories = [[5, 117, 42], [100]]
    items, scores = net.topk({"input": left_pad(histories, 4)}, 6)
    assert torch.isfinite(scores).all() and (items > 0).all()
    assert (items >= 100).any()  # some 3-digit identifiers survived the pruning
    for h, row, srow in zip(histories, items.tolist(), scores.tolist()):
        exact = [exact_logprob(net, h, i) for i in row]
        torch.testing.assert_close(torch.tensor(srow), torch.tensor(exact), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("num_items", "beam"), [(30, 30), (120, 6), (30, 10)])
def test_transformers_generate_decoding_returns_the_same_search(num_items, beam):
    """``decoding="generate"`` (transformers' ``generate`` with the trie as a logits processor) finds the items of the
    shared-cache tree decoding with the same scores, with and without seen items, exhaustive (beam = N) or pruned;
    duplicates from generate's copied start beams never appear, and a user with fewer unseen items than the beam gets
    item 0 / -inf in the free slots."""
    net = make_net(num_items=num_items, beam=beam)
    histories = left_pad([[3, 12, 7, 30], [25], []], 6)
    seen = left_pad([[3, 12, 7, 30, 2, 21], [25, 1, 10, 11, 13], [4]], 8)
    for s in (None, seen):
        tree = net.beam_search(histories, s)
        net.decoding = "generate"
        gen = net.beam_search(histories, s)
        net.decoding = "tree"
        assert torch.equal(gen[0], tree[0])
        finite = torch.isfinite(tree[1])
        assert torch.equal(torch.isfinite(gen[1]), finite)
        torch.testing.assert_close(gen[1][finite], tree[1][finite], atol=1e-5, rtol=0)
        for row in gen[0].tolist():
            found = [i for i in row if i]
            assert len(found) == len(set(found))
    if num_items == beam:  # the exhaustive search over unseen items leaves free slots for users who saw items
        assert (gen[0][0] == 0).sum() == 6 and torch.isinf(gen[1][0, -6:]).all()
    net.decoding = "greedy"
    with pytest.raises(ValueError, match="expected decoding in"):
        net.beam_search(histories)


def test_generate_decoding_lists_match_teacher_forcing():
    """Every item of the ``generate`` decoding scores its teacher-forced log-probability under the pruned constrained
    softmax (the logits processor renormalises over the allowed identifier tokens, as the tree decoding does)."""
    net = make_net(num_items=120, beam=6)
    net.decoding = "generate"
    histories, seen = [[5, 117, 42], [100]], [[5, 117, 42, 99], [100]]
    items, scores = net.topk({"input": left_pad(histories, 4), "seen": left_pad(seen, 4)}, 6)
    assert (items > 0).all() and 99 not in items[0].tolist() and 99 in items[1].tolist()
    for h, s, row, srow in zip(histories, seen, items.tolist(), scores.tolist()):
        exact = [exact_logprob(net, h, i, tuple(s)) for i in row]
        torch.testing.assert_close(torch.tensor(srow), torch.tensor(exact), atol=1e-4, rtol=0)


def test_left_padding_and_eval_do_not_change_results():
    net = make_net(num_items=30, beam=8)
    user = [4, 17, 29]
    alone = net.topk({"input": torch.tensor([user])}, 8)
    for length in (5, 12):  # padded by 2, then by 9, beside a full row
        batch = {"input": left_pad([user, list(range(1, length + 1))], length)}
        items, scores = net.topk(batch, 8)
        assert items[0].tolist() == alone[0][0].tolist()
        torch.testing.assert_close(scores[0], alone[1][0], atol=1e-5, rtol=0)
        assert net.topk({"input": left_pad([user], length)}, 8)[0].tolist() == alone[0].tolist()
    again = net.topk({"input": torch.tensor([user])}, 8)
    assert torch.equal(again[0], alone[0]) and torch.equal(again[1], alone[1])


# -- training --------------------------------------------------------------------------------------------------------
def train_batch() -> dict:
    windows = [[3, 12, 7, 30, 5], [1, 2], [25, 26, 27, 28, 29, 9, 10]]
    return {"input": left_pad([w[:-1] for w in windows], 6), "target": left_pad([w[1:] for w in windows], 6)}


def test_loss_is_the_identifier_cross_entropy_of_the_target_items():
    net = make_net(num_items=30)
    batch = train_batch()
    loss = net.loss(batch)
    # independent: full-vocabulary logits of each window's text, restricted to the 11 identifier tokens
    chars = DIGITS + SEPARATOR
    ids = [net.tokenizer.encode(c, add_special_tokens=False)[0] for c in chars]
    terms = []
    for inp, tgt in zip(batch["input"].tolist(), batch["target"].tolist()):
        window = [i for i in inp if i] + [tgt[-1]]
        text = prompt(window)
        first = len(prompt(window[:1]))  # tokens of the first item are not predicted
        with torch.no_grad():
            logits = net.lm(input_ids=text_ids(net, text)).logits[0][:, ids]
        for j in range(first, len(text)):
            terms.append(-logits[j - 1].log_softmax(0)[chars.index(text[j])])
    torch.testing.assert_close(loss.detach(), torch.stack(terms).mean(), atol=1e-5, rtol=0)
    # an evaluation batch (one target after the input) is the training loss on the last item only
    last = {"input": batch["input"], "target": torch.zeros_like(batch["target"])}
    last["target"][:, -1] = batch["target"][:, -1]
    torch.testing.assert_close(net.loss({"input": batch["input"], "target": batch["target"][:, -1]}), net.loss(last))
    torch.testing.assert_close(net.loss(batch, positions="last"), net.loss(last))


def test_loss_decreases_and_trains_only_trainable_parameters():
    net = make_net(num_items=30, tuning="lora").train()
    batch = train_batch()
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert trainable and len(trainable) < len(list(net.parameters()))
    opt = torch.optim.Adam(trainable, lr=5e-3)
    losses = []
    for _ in range(6):
        loss = net.loss(batch)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        for name, p in net.named_parameters():
            assert (p.grad is not None) == p.requires_grad, name
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2, losses
