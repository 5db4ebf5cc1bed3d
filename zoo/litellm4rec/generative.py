r"""The generative baseline of the litellm4rec family: a P5-style sequential recommender with beam search over item ids.

Lite-LLM4Rec (Wang et al., arXiv 2402.09543) replaces the beam search of generative LLM recommenders (P5, Geng et
al., RecSys 2022) by a projection head that scores every item in one step. This module is that baseline: a causal
language model reads a history written as text and *generates* the identifier of the next item.

**Item identifiers** (P5's sequential indexing): item i is its decimal digits followed by a separator, e.g. item 12
is ``"12,"``. Each digit and the separator is one token of the backbone's tokenizer, so the *identifier vocabulary*
is 11 tokens. A history is the concatenation of its items' identifiers after a leading separator (the start
token: an empty history is still a prompt, and every identifier is read after a separator), e.g. ``",3,12,7,"`` —
no natural-language prompt. The separator makes the identifiers prefix-free: ``"1,"`` and ``"12,"`` are distinct.

**Training**: next-token cross-entropy on every token of the items that are targets (all items of the window but
the first), with the softmax taken over the 11 identifier tokens only — the LM head is evaluated on those 11 rows
of the output embedding, never on the whole vocabulary. This is consistent with the constrained decoding below,
which never allows any other token.

**Inference**: constrained beam search over a prefix trie of the identifiers (width ``config.beam``). The prompt is
encoded once with the KV cache; at each step a beam's scores are the log-softmax of its logits over the identifier
tokens that the trie allows after its prefix (renormalised over the allowed tokens), beams accumulate
log-probabilities, finished beams (separator emitted: an item) stay in the beam and compete with the live ones, and
the search ends when every beam is finished (at most the longest identifier's length in steps). The beams of a user
share its prompt's cache (a tree attention mask, see ``beam_search``) instead of copying it. The user's seen items
are excluded *during* the search, not removed after it: the trie is pruned per user (``unseen_subtrees``), so a
token is allowed only if it leads to a subtree that still holds an item the user has not seen — the leaf of a seen
item is never reached, nor an inner node all of whose items are seen — and the constrained softmax is renormalised
over the remaining tokens. A beam slot is thus never spent on a seen item, and the ``beam`` items found, best first,
are the recommendation (``beam`` of them whenever the user has that many unseen items). This mirrors the
full-ranking models, which exclude seen items from their scores before taking the top k. There is no score of every
item (``scores`` raises): ranks beyond the beam are unknown, so Recall/NDCG@K are exact for K <= beam only.

**Two decodings of the same search** (``decoding``): ``"tree"`` (the default, above) shares each user's prompt cache
among the beams; ``"generate"`` runs the same constrained, renormalised, seen-pruned search through transformers'
``generate(num_beams=beam, num_return_sequences=beam, early_stopping=True, output_scores=True)``, the way generative
LLM recommenders usually decode. They pass the trie as ``prefix_allowed_tokens_fn``, a Python call per beam and step
that masks without renormalising; here one vectorised logits processor masks and renormalises, so the scores are
those of the tree decoding. ``generate`` copies each prompt once per beam before encoding it (``beam`` times the
prompt's work), evaluates the LM head over the whole vocabulary at every step, and keeps ``beam`` live hypotheses
beside the finished ones, so its lists can differ a little from the shared search's (same scores for the same
items). The benchmark times both (``scripts/bench_litellm4rec.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.litellm4rec.metrics import list_ranks
from zoo.litellm4rec.nets import _forward_args, _positions

__all__ = ["GenerativeRecNet", "DIGITS", "SEPARATOR"]

DIGITS = "0123456789"
SEPARATOR = ","
_SEP = 10  # index of the separator in the identifier vocabulary (the digits are 0..9)
_NSYM = 11  # size of the identifier vocabulary
_STAY = 11  # beam-search candidate "keep this finished beam as it is", after the 11 symbols
DECODINGS = ("tree", "generate")


class GenerativeRecNet(nn.Module):
    """P5-style generative recommender (see the module docstring).

    Args:
        config: a ``zoo.models.litellm4rec.LiteLLM4RecConfig`` with ``arch="generative"``; uses ``num_items``,
            ``rec_backbone``, ``rec_layers``, ``rec_tuning`` (and the LoRA fields) and ``beam``.
        separator: the character that ends every item identifier (one token of the tokenizer, not a digit).
        decoding: ``"tree"`` (the beams share the prompt's cache) or ``"generate"`` (transformers' ``generate``, as
            generative recommenders usually decode); an attribute, changeable after loading.

    Raises:
        ValueError: a digit or the separator is not exactly one token of the backbone's tokenizer.
    """

    def __init__(self, config, separator: str = SEPARATOR, decoding: str = "tree") -> None:
        super().__init__()
        from zoo.backbones import load_backbone
        from zoo.litellm4rec.nets import MergedLoRA, _tune

        if len(separator) != 1 or separator in DIGITS:
            raise ValueError(f"expected a one-character, non-digit separator, got {separator!r}")
        self.config = c = config
        self.num_items = c.num_items
        self.decoding = decoding
        self.lm, self.tokenizer = load_backbone(c.rec_backbone, num_layers=c.rec_layers, causal_lm=True)
        _tune(self.lm, c.rec_tuning, c)
        self._lora = MergedLoRA(self, self.lm)
        self.register_buffer("id_tokens", _identifier_tokens(self.tokenizer, DIGITS + separator), persistent=False)
        # vocabulary id -> identifier symbol (0..10), -1 for every other token (the last entry stands for all ids
        # above the identifier tokens): reads generated token ids back as symbols
        symbol = torch.full((int(self.id_tokens.max()) + 2,), -1, dtype=torch.long)
        symbol[self.id_tokens] = torch.arange(_NSYM)
        self.register_buffer("token_symbol", symbol, persistent=False)
        self.pad_token = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        symbols, next_node, leaf_item = build_trie(c.num_items)
        self.register_buffer("item_symbols", symbols, persistent=False)
        self.register_buffer("trie_next", next_node, persistent=False)
        self.register_buffer("leaf_item", leaf_item, persistent=False)
        self.max_steps = symbols.shape[1]
        depth = trie_depths(next_node)
        self.register_buffer("trie_depth", depth, persistent=False)
        # the inner nodes, deepest first, and how many there are at each depth (max_steps - 1 down to 0): the
        # levels of the bottom-up pass of ``unseen_subtrees``
        inner = (leaf_item == 0).nonzero().squeeze(1)
        inner = inner[depth[inner].argsort(descending=True, stable=True)]
        self.register_buffer("trie_inner", inner, persistent=False)
        self._level_sizes = [int((depth[inner] == d).sum()) for d in range(self.max_steps - 1, -1, -1)]

    # -- tokens ------------------------------------------------------------------------------------------------------
    def sequences(self, items: Tensor, is_target: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Identifier-symbol sequences of item histories, left-padded.

        Args:
            items: ``[B, M]`` item ids, 0 = padding (anywhere: rows are compacted).
            is_target: ``[B, M]`` bool, the items whose tokens get a loss (None: none).

        Returns:
            ``(symbols, mask, target)``, each ``[B, T]``: the identifier-vocabulary index (0..9 the digits, 10 the
            separator; 0 at padding) of every token of the leading separator and the items' identifiers,
            left-padded to the longest row; the attention mask (long); whether the token belongs to a target item.
        """
        B = items.shape[0]
        sym = self.item_symbols[items]  # [B, M, W], -1 past an identifier's end and for padding
        valid = sym >= 0
        target = valid & is_target[..., None] if is_target is not None else torch.zeros_like(valid)
        start = torch.full((B, 1), _SEP, dtype=sym.dtype, device=sym.device)
        sym = torch.cat([start, sym.flatten(1)], 1)
        valid = torch.cat([torch.ones_like(start, dtype=torch.bool), valid.flatten(1)], 1)
        target = torch.cat([torch.zeros_like(start, dtype=torch.bool), target.flatten(1)], 1)
        order = valid.long().argsort(dim=1, stable=True)  # padding first, tokens in order: left-padded
        order = order[:, -int(valid.sum(1).max()) :]
        sym, valid, target = sym.gather(1, order), valid.gather(1, order), target.gather(1, order)
        return sym.clamp(min=0), valid.long(), target

    def _run(self, symbols: Tensor, mask: Tensor, position_ids: Tensor, cache=None) -> Tensor:
        """Last hidden states ``[B, T, d]`` of the causal LM body on identifier symbols ``[B, T]``.

        Args:
            symbols: ``[B, T]`` identifier-vocabulary indices (0..10).
            mask: ``[B, past + T]`` (long, 0 = padding; the model adds the causal mask) or a ready additive mask
                ``[B, 1, T, past + T]`` (0 = attend, the dtype's minimum = blocked).
            position_ids: ``[B, T]``.
            cache: a ``DynamicCache`` that holds the past and is extended in place, or None.
        """
        ids = self.id_tokens[symbols]
        if mask.dim() == 2:
            ids = ids.masked_fill(mask[:, -symbols.shape[1] :] == 0, self.pad_token)
        body = self.lm.get_decoder()
        self._lora.sync(self)
        kwargs = {}
        if cache is not None:  # transformers 5.x renames past_key_values to cache
            kwargs["cache" if "cache" in _forward_args(body) else "past_key_values"] = cache
        out = body(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=cache is not None, **kwargs)
        return out.last_hidden_state

    def id_logits(self, h: Tensor) -> Tensor:
        """Logits ``[..., 11]`` of the identifier tokens from hidden states ``h`` ``[..., d]``: the LM head evaluated
        on its 11 identifier rows only (a softmax over them is a softmax over the identifier vocabulary)."""
        head = self.lm.get_output_embeddings()
        logits = h @ head.weight[self.id_tokens].T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[self.id_tokens]
        return logits

    # -- training ----------------------------------------------------------------------------------------------------
    def loss(self, batch: dict, positions: str | None = None) -> Tensor:
        """Mean next-token cross-entropy over the identifier vocabulary on the tokens of the target items.

        Args:
            batch: ``input`` ``[B, L]`` (left-padded) and ``target``: ``[B, L]`` (the input shifted by one, 0 = no
                loss; the window is the input followed by the last target) or ``[B]`` (one target after the input).
            positions: ``"all"`` (every target item of the window) or ``"last"`` (the last one only).

        Returns:
            The scalar loss.
        """
        input, target = batch["input"], batch["target"]
        if target.dim() == 1:
            target = torch.cat([torch.zeros_like(input[:, 1:]), target[:, None]], 1)
        items = torch.cat([input, target[:, -1:]], 1)
        is_target = torch.cat([torch.zeros_like(target[:, :1]), target], 1) > 0
        if (positions or self.config.loss_positions) == "last":
            is_target = torch.cat([torch.zeros_like(is_target[:, :-1]), is_target[:, -1:]], 1)
        sym, mask, tgt = self.sequences(items, is_target)
        h = self._run(sym, mask, _positions(mask))
        keep = tgt[:, 1:]  # the token at t + 1 is predicted from the state at t
        if not keep.any():
            raise ValueError("the batch has no target item")
        return F.cross_entropy(self.id_logits(h[:, :-1][keep]), sym[:, 1:][keep])

    # -- inference ---------------------------------------------------------------------------------------------------
    def scores(self, input: Tensor) -> Tensor:
        """Not defined: the generative baseline cannot score every item in one step (the point of Lite-LLM4Rec).

        Raises:
            NotImplementedError: always; use ``topk`` or ``ranks`` (beam search).
        """
        raise NotImplementedError(
            "the generative baseline does not score every item in one step: it ranks items by beam search (use topk "
            "or ranks)"
        )

    @torch.no_grad()
    def unseen_subtrees(self, seen: Tensor) -> Tensor:
        """The trie pruned per user: whether each node's subtree holds an item the user has not seen.

        Vectorised over users: the leaves of unseen items are marked, then every inner node, level by level from
        the deepest (at most ``max_steps`` levels), takes the OR of its children.

        Args:
            seen: ``[B, S]`` item ids to exclude, 0-padded.

        Returns:
            ``[B, nodes]`` bool: True where some leaf at or below the node is an item absent from the user's row
            (False at the leaf of a seen item, and at an inner node all of whose leaves are seen; the root is False
            only for a user who has seen every item).
        """
        B, nodes = seen.shape[0], self.leaf_item.shape[0]
        is_seen = torch.zeros(B, self.num_items + 1, dtype=torch.bool, device=seen.device)
        is_seen.scatter_(1, seen.long(), True)
        has = (self.leaf_item > 0) & ~is_seen[:, self.leaf_item]  # [B, nodes], the leaves so far
        has = torch.cat([has, has.new_zeros(B, 1)], 1)  # column ``nodes``: a missing child, never allowed
        child = torch.where(self.trie_next >= 0, self.trie_next, nodes)  # [nodes, 11]
        start = 0
        for size in self._level_sizes:  # deepest inner nodes first: their children are final
            level = self.trie_inner[start : start + size]
            has[:, level] = has[:, child[level]].any(-1)  # [B, size, 11] -> [B, size]
            start += size
        return has[:, :nodes]

    @torch.no_grad()
    def beam_search(self, input: Tensor, seen: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Constrained beam search of width ``config.beam`` after each history, optionally excluding seen items.

        The prompt is encoded once per user into the KV cache, which is never copied per beam: the K tokens that
        the K beams emit at a step are appended to their user's row of the cache as one block, each attending to
        the prompt and to its own ancestors only (a tree-shaped 4D attention mask, positions = prompt length +
        step), so the cache grows by K tokens a step instead of being repeated K times and reordered.

        With ``seen``, the trie is pruned per user (``unseen_subtrees``): a token is allowed only if it leads to a
        node whose subtree still holds an item the user has not seen, and the constrained log-softmax is
        renormalised over those tokens. No beam slot is spent on a seen item, so the beam holds
        ``min(beam, unseen items)`` items at the end: either nothing was ever cut (the search was exhaustive) or the
        beam was full and every beam still leads to an unseen item.

        With ``decoding="generate"`` the same search runs through transformers' ``generate`` instead
        (``_generate_search``).

        Args:
            input: ``[B, L]`` item histories, left-padded with 0.
            seen: ``[B, S]`` items to exclude per user, 0-padded, or None (nothing excluded).

        Returns:
            ``(items, scores)``, each ``[B, beam]``, best first: the items found and their sequence log-probabilities
            (sum over the identifier's tokens of the constrained — and, with ``seen``, pruned — log-softmax); item 0
            and -inf where the beam holds fewer items than its width.
        """
        if self.decoding not in DECODINGS:
            raise ValueError(f"expected decoding in {DECODINGS}, got {self.decoding!r}")
        if self.decoding == "generate":
            return self._generate_search(input, seen)
        from transformers import DynamicCache

        K, B, device = self.config.beam, input.shape[0], input.device
        sym, mask, _ = self.sequences(input)
        length = mask.sum(1)
        cache = DynamicCache(config=self.lm.config)
        logits = self.id_logits(self._run(sym, mask, _positions(mask), cache)[:, -1])[:, None].expand(B, K, -1)
        blocked = torch.finfo(logits.dtype).min
        prompt_mask = (1 - mask[:, None, :].expand(B, K, -1).to(logits.dtype)) * blocked  # [B, K, T] additive
        # one live beam per user at the root; the other K - 1 slots are dead (-inf) until filled
        node = torch.zeros(B, K, dtype=torch.long, device=device)
        score = torch.full((B, K), -math.inf, dtype=logits.dtype, device=device)
        score[:, 0] = 0.0
        done = torch.ones(B, K, dtype=torch.bool, device=device)
        done[:, 0] = False
        slots = torch.arange(K, device=device)[None, :, None].expand(B, K, 1)
        ancestors = torch.zeros(B, K, 0, dtype=torch.long, device=device)  # slot of each beam's token at each step
        missing, open_ = self.leaf_item.shape[0], None  # open_ [B, nodes + 1]: the pruned trie, False at missing
        if seen is not None and seen.numel():
            open_ = F.pad(self.unseen_subtrees(seen), (0, 1))
        for step in range(self.max_steps):
            nxt = self.trie_next[node]  # [B, K, 11]
            allowed = (nxt >= 0) & ~done[..., None]
            if open_ is not None:  # only toward a subtree with an item the user has not seen
                child = torch.where(nxt >= 0, nxt, missing).flatten(1)
                allowed = allowed & open_.gather(1, child).view_as(nxt)
            logp = logits.masked_fill(~allowed, -math.inf).log_softmax(-1)
            logp = torch.where(allowed, logp, -math.inf)  # rows with nothing allowed are NaN before this
            stay = torch.where(done, score, -math.inf)[..., None]
            cand = torch.cat([score[..., None] + logp, stay], -1).flatten(1)  # [B, K * 12]
            score, idx = cand.topk(K, dim=1)
            parent, s = idx // (_STAY + 1), idx % (_STAY + 1)
            moved = s != _STAY
            pnode = node.gather(1, parent)
            node = torch.where(moved, nxt.flatten(1, 2).gather(1, parent * _NSYM + s.clamp(max=_SEP)), pnode)
            node = node.clamp(min=0)  # dead slots (-inf) may point nowhere
            done = ~moved | (self.leaf_item[node] > 0) | torch.isinf(score)
            if bool(done.all()):
                break
            # the new block: beam j's token sits in slot j and sees its parent's ancestors and itself
            ancestors = torch.cat([ancestors.gather(1, parent[..., None].expand(-1, -1, step)), slots], 2)
            own = F.one_hot(ancestors, K).flatten(2).to(logits.dtype)  # [B, K, (step + 1) * K]
            attn = torch.cat([prompt_mask, (1 - own) * blocked], 2)[:, None]
            position = (length[:, None] + step).expand(B, K)
            h = self._run(s.clamp(max=_SEP), attn, position, cache)  # finished beams feed a token no one reads
            logits = self.id_logits(h)
        items = torch.where(done & torch.isfinite(score), self.leaf_item[node], 0)
        return items, score.masked_fill(items == 0, -math.inf)

    @torch.no_grad()
    def _generate_search(self, input: Tensor, seen: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``beam_search`` through transformers' ``generate``: the same identifier prompt, trie, renormalised
        constrained softmax and per-user pruning of seen items, decoded by ``generate(num_beams=beam,
        num_return_sequences=beam, early_stopping=True, length_penalty=0)`` (scores are sums of log-probabilities, as
        in ``beam_search``) with the separator as end-of-sequence token. Same arguments and outputs as
        ``beam_search``; a returned sequence that is not a whole identifier (the search ran out of steps) is item 0
        with score -inf."""
        from transformers import LogitsProcessorList

        K, B = self.config.beam, input.shape[0]
        sym, mask, _ = self.sequences(input)
        ids = self.id_tokens[sym].masked_fill(mask == 0, self.pad_token)
        open_ = None
        if seen is not None and seen.numel():
            open_ = F.pad(self.unseen_subtrees(seen), (0, 1))
        self._lora.sync(self)
        out = self.lm.generate(
            input_ids=ids, attention_mask=mask, num_beams=K, num_return_sequences=K, do_sample=False,
            max_new_tokens=self.max_steps, early_stopping=True, length_penalty=0.0,
            eos_token_id=int(self.id_tokens[_SEP]), pad_token_id=self.pad_token, return_dict_in_generate=True,
            output_scores=True, logits_processor=LogitsProcessorList([_TrieLogits(self, ids.shape[1], K, open_)]),
        )  # fmt: skip
        node = self._walk(out.sequences[:, ids.shape[1] :])
        items = self.leaf_item[node.clamp(min=0)].masked_fill(node < 0, 0)
        items, scores = items.view(B, K), out.sequences_scores.view(B, K)
        scores, order = scores.masked_fill(items == 0, -math.inf).sort(dim=1, descending=True, stable=True)
        items = items.gather(1, order)
        # generate starts the beams of a user as copies of one at -1e9: such a copy can return an item again
        again = (items[:, :, None] == items[:, None, :]).tril(-1).any(-1)
        scores = scores.masked_fill(again, -math.inf).sort(dim=1, descending=True, stable=True)
        return items.gather(1, scores.indices).masked_fill(torch.isinf(scores.values), 0), scores.values

    def _walk(self, tokens: Tensor) -> Tensor:
        """Trie node ``[R]`` reached by each row of generated vocabulary ids ``[R, t]``, stopping after a separator
        (a leaf); -1 where a token is not an identifier token or leaves the trie."""
        symbol = self.token_symbol[tokens.clamp(min=0, max=self.token_symbol.shape[0] - 1)]
        node = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
        for t in range(tokens.shape[1]):
            live = (node >= 0) & (self.leaf_item[node.clamp(min=0)] == 0)  # not yet at a leaf, not lost
            step = self.trie_next[node.clamp(min=0), symbol[:, t].clamp(min=0)]
            step = torch.where(symbol[:, t] >= 0, step, -1)
            node = torch.where(live, step, node)
        return node

    @torch.no_grad()
    def topk(self, batch: dict, k: int) -> tuple[Tensor, Tensor]:
        """Top-k recommendations by beam search: the best k of the ``beam`` items found, seen items excluded.

        The seen items are excluded inside the search (``beam_search(input, seen)``, a per-user pruned trie), as the
        full-ranking models exclude them from their scores: every item found is unseen, and the list has k items
        whenever the user has at least k unseen items. The filter applied afterwards is only a safety net (a no-op).

        Args:
            batch: ``input`` ``[B, L]`` (left-padded) and optionally ``seen`` ``[B, S]`` (0-padded items to exclude).
            k: list length, at most ``config.beam``.

        Returns:
            ``(items [B, k], scores [B, k])``: sequence log-probabilities under the pruned constrained softmax, best
            first; item 0 and score -inf where the user has fewer than k unseen items.

        Raises:
            ValueError: ``k`` exceeds the beam width.
        """
        if k > self.config.beam:
            raise ValueError(f"the beam width ({self.config.beam}) must be >= k ({k}): set config.beam >= {k}")
        seen = batch.get("seen")
        items, scores = self.beam_search(batch["input"], seen)
        if seen is not None and seen.numel():  # safety net: the search already excluded them
            scores = scores.masked_fill((items[..., None] == seen[:, None, :]).any(-1), -math.inf)
        scores, order = scores.sort(dim=1, descending=True, stable=True)
        items = items.gather(1, order)[:, :k]
        scores = scores[:, :k]
        return items.masked_fill(torch.isinf(scores), 0), scores

    def ranks(self, batch: dict) -> Tensor:
        """1-based rank ``[B]`` of ``batch["target"]`` in ``topk(batch, config.beam)``, ``num_items + 1`` if absent."""
        items, _ = self.topk(batch, self.config.beam)
        return list_ranks(items, batch["target"], self.num_items + 1)


class _TrieLogits:
    """Logits processor of ``GenerativeRecNet._generate_search``: keeps, for each beam, the identifier tokens that the
    trie (pruned per user with ``open_``) allows after the beam's generated prefix, renormalised over them (the
    constrained log-softmax of ``beam_search``); every other token gets -inf.

    Args:
        net: the network (its trie and identifier tokens).
        prompt: prompt length (generated tokens start there).
        beams: beams per user (rows of a user are consecutive, as ``generate`` lays them out).
        open_: ``[B, nodes + 1]`` the pruned trie of ``unseen_subtrees`` padded with a False column, or None.
    """

    def __init__(self, net: GenerativeRecNet, prompt: int, beams: int, open_: Tensor | None) -> None:
        self.net, self.prompt, self.beams, self.open_ = net, prompt, beams, open_

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        net = self.net
        node = net._walk(input_ids[:, self.prompt :])
        nxt = net.trie_next[node.clamp(min=0)]  # [R, 11]
        allowed = (nxt >= 0) & (node >= 0)[:, None]
        if self.open_ is not None:
            user = torch.arange(len(node), device=node.device) // self.beams
            child = torch.where(nxt >= 0, nxt, self.open_.shape[1] - 1)
            allowed = allowed & self.open_[user[:, None], child]
        logp = scores[:, net.id_tokens].masked_fill(~allowed, -math.inf).log_softmax(-1)
        out = torch.full_like(scores, -math.inf)
        out[:, net.id_tokens] = torch.where(allowed, logp, -math.inf)
        return out


def build_trie(num_items: int) -> tuple[Tensor, Tensor, Tensor]:
    """Identifier symbols and prefix trie of items 1..N (symbols 0..9: digits, 10: separator).

    Args:
        num_items: N.

    Returns:
        ``(symbols, next_node, leaf_item)``: ``[N + 1, W]`` the symbols of each item's identifier (``str(i)`` then
        the separator), -1-padded to the longest W (row 0, padding: all -1); ``[nodes, 11]`` the child of each trie
        node (node 0: the root, the empty prefix) for each symbol, -1 where no identifier continues that way;
        ``[nodes]`` the item whose identifier ends at the node (a leaf), 0 for inner nodes.
    """
    width = len(str(max(num_items, 1))) + 1
    symbols = torch.full((num_items + 1, width), -1, dtype=torch.long)
    children: list[list[int]] = [[-1] * _NSYM]
    leaf = [0]
    for item in range(1, num_items + 1):
        word = [int(d) for d in str(item)] + [_SEP]
        symbols[item, : len(word)] = torch.tensor(word)
        node = 0
        for s in word:
            if children[node][s] < 0:
                children[node][s] = len(children)
                children.append([-1] * _NSYM)
                leaf.append(0)
            node = children[node][s]
        leaf[node] = item
    return symbols, torch.tensor(children, dtype=torch.long), torch.tensor(leaf, dtype=torch.long)


def trie_depths(next_node: Tensor) -> Tensor:
    """Depth ``[nodes]`` of every trie node (the root 0, a leaf the length of its identifier), vectorised.

    Args:
        next_node: ``[nodes, 11]`` the trie of ``build_trie`` (every node but the root is the child of exactly one).
    """
    nodes = next_node.shape[0]
    parent = torch.full((nodes,), -1, dtype=torch.long)
    has = next_node >= 0
    parent[next_node[has]] = torch.arange(nodes)[:, None].expand_as(next_node)[has]
    depth = torch.zeros(nodes, dtype=torch.long)
    for _ in range(nodes):  # one level more is final each round; stops after (longest identifier + 1) rounds
        new = torch.where(parent >= 0, depth[parent.clamp(min=0)] + 1, 0)
        if torch.equal(new, depth):
            return depth
        depth = new
    return depth


def _identifier_tokens(tokenizer, chars: str) -> Tensor:
    """Vocabulary ids ``[len(chars)]`` of the characters, each of which must be exactly one token."""
    ids = []
    for ch in chars:
        enc = tokenizer.encode(ch, add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(
                f"the tokenizer ({type(tokenizer).__name__}) encodes {ch!r} as {len(enc)} tokens {enc}; the generative "
                "recommender needs every digit and the separator to be exactly one token (choose another separator "
                "or backbone)"
            )
        ids.append(enc[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"the tokenizer maps the identifier characters {chars!r} to repeated ids {ids}")
    return torch.tensor(ids, dtype=torch.long)
