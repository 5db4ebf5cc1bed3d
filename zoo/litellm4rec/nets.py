r"""Networks of the litellm4rec family: Lite-LLM4Rec and SASRec (the generative baseline is in ``generative.py``).

Every network maps a left-padded batch of item sequences (``zoo.litellm4rec.data``) to next-item predictions and
offers the same three methods, so one LightningModule trains and evaluates them all:

* ``loss(batch)``: full-softmax cross-entropy over all items at the positions that have a target;
* ``scores(input)``: ``[B, N + 1]`` scores of every item (column 0 is padding) after the last position;
* ``topk(batch, k)`` / ``ranks(batch)``: recommendations and target ranks, with the user's seen items excluded.

**Lite-LLM4Rec** (Wang et al., arXiv 2402.09543): an *item LLM* encodes each item's text once into a vector
(``item_pooling``: the last token's or the mean hidden state); a linear projection maps it to the width of the
*recommendation LLM*, a Hugging Face decoder (or an encoder with a causal mask) fed ``inputs_embeds`` — the projected
item vectors plus a learned position embedding — never word embeddings; its hidden state at position t scores the
item at t + 1 through the *projection head*, a linear layer over all items (``head="linear"``) or the projected item
vectors themselves (``head="tied"``). With a frozen item LLM (``item_tuning="frozen"``) the vectors are computed
once per catalogue and cached; with ``"lora"`` or ``"full"`` the item LLM is trained end to end and each step
encodes only the batch's unique items (hierarchical: once per item, not once per occurrence).

**SASRec** (Kang & McAuley, ICDM 2018): learned item-ID and position embeddings, ``layers`` causal self-attention
blocks, scores = dot products with the item embeddings; trained with the same full cross-entropy as ours (the
original samples one negative with binary cross-entropy; full softmax is the stronger, now usual, choice).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.litellm4rec.metrics import mask_scores, target_ranks

__all__ = ["RecNet", "LiteLLM4RecNet", "SASRecNet", "MergedLoRA", "encode_texts"]


class RecNet(nn.Module):
    """Shared scoring, ranking and loss of score-based networks; subclasses define ``hidden(input)`` ``[B, L, d]``
    and ``logits(h)`` ``[T, N + 1]`` of hidden states ``h`` ``[T, d]``."""

    num_items: int

    def hidden(self, input: Tensor) -> Tensor:
        raise NotImplementedError

    def logits(self, h: Tensor) -> Tensor:
        raise NotImplementedError

    def loss(self, batch: dict, positions: str | None = None) -> Tensor:
        """Mean cross-entropy over all items at every position with a target (``"all"``) or the last only
        (default: ``config.loss_positions``)."""
        positions = positions or self.config.loss_positions
        target = batch["target"]
        if target.dim() == 1:  # one target per sequence, after the last position
            target = torch.cat([torch.zeros_like(batch["input"][:, 1:]), target[:, None]], 1)
        if positions == "last":
            target = torch.cat([torch.zeros_like(target[:, :-1]), target[:, -1:]], 1)
        h = self.hidden(batch["input"])
        keep = target > 0
        logits = self.logits(h[keep])
        logits[:, 0] = -math.inf  # padding is never a target
        return F.cross_entropy(logits, target[keep])

    def scores(self, input: Tensor) -> Tensor:
        """Scores ``[B, N + 1]`` of every item as the next one after ``input`` ``[B, L]`` (column 0: padding)."""
        return self.logits(self.hidden(input)[:, -1])

    def ranks(self, batch: dict) -> Tensor:
        """1-based rank of each target among all items, seen items excluded."""
        return target_ranks(mask_scores(self.scores(batch["input"]), batch.get("seen")), batch["target"])

    def topk(self, batch: dict, k: int) -> tuple[Tensor, Tensor]:
        """``(items [B, k], scores [B, k])``, best first, excluding padding and the items of ``batch["seen"]``."""
        scores = mask_scores(self.scores(batch["input"]), batch.get("seen"))
        values, items = scores.topk(k, dim=1)
        return items, values


def encode_texts(model, tokenizer, texts: list[str], pooling: str, max_tokens: int, batch_size: int = 64,
                 progress: bool = False) -> Tensor:  # fmt: skip
    """Pooled hidden states ``[len(texts), d]`` of a Hugging Face body: the last non-padding token's (``"last"``) or
    the mean over tokens (``"mean"``)."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    out = []
    starts = range(0, len(texts), batch_size)
    for start in tqdm(starts, desc="encoding items", disable=not progress, leave=False):
        enc = tokenizer(
            texts[start : start + batch_size],
            padding=True,
            truncation=True,
            max_length=max_tokens,
            return_tensors="pt",
        ).to(device)
        mask = enc["attention_mask"]
        if tokenizer.padding_side == "left":
            raise ValueError("encode_texts expects a right-padding tokenizer")
        h = model(input_ids=enc["input_ids"], attention_mask=mask).last_hidden_state
        out.append(_pool(h, mask, pooling))
    return torch.cat(out)


class LiteLLM4RecNet(RecNet):
    """Lite-LLM4Rec (see the module docstring).

    Args:
        config: a ``zoo.models.litellm4rec.LiteLLM4RecConfig`` with ``arch="lite"``.
        item_texts: the text of items 1..N (needed by a trainable item LLM; a frozen one gets its vectors through
            ``set_item_vectors``).
    """

    def __init__(self, config, item_texts: list[str] | None = None) -> None:
        super().__init__()
        from zoo.backbones import load_backbone

        self.config = c = config
        self.num_items = c.num_items
        rec, _ = load_backbone(c.rec_backbone, num_layers=c.rec_layers, is_decoder=True)
        if hasattr(rec, "embed_tokens"):  # the recommendation LLM reads item vectors, never word embeddings
            rec.embed_tokens = None
        self.rec = rec
        d = rec.config.hidden_size
        self.d_rec = d
        _tune(rec, c.rec_tuning, c)
        self._lora = MergedLoRA(self, rec)
        # item LLM: frozen -> vectors precomputed outside (set_item_vectors); else a trainable submodule
        self.item_llm = None
        if c.item_tuning != "frozen":
            item, tok = load_backbone(c.item_backbone)  # the body (AutoModel): no language-modelling head
            _tune(item, c.item_tuning, c)
            self.item_llm, self.tokenizer = item, tok
            d_item = item.config.hidden_size
            if item_texts is not None:
                self.set_item_texts(item_texts)
        else:
            d_item = c.item_dim
        self.register_buffer("item_vectors", torch.zeros(c.num_items + 1, d_item), persistent=False)
        self.has_item_vectors = False
        self.item_proj = nn.Linear(d_item, d)
        # N(0, pos_init_std²), drawn as nn.Embedding's own N(0, 1) init would be (same random stream)
        self.pos = (
            nn.Embedding(c.max_len, d, _weight=torch.randn(c.max_len, d) * c.pos_init_std) if c.pos_embedding else None
        )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(d, c.num_items + 1, bias=c.head_bias) if c.head == "linear" else None
        self.item_calls = 0  # items encoded by the item LLM so far (the hierarchy test counts them)

    # -- items -------------------------------------------------------------------------------------------------------
    def set_item_vectors(self, vectors: Tensor) -> None:
        """Set the frozen item LLM's vectors of items 1..N (``[N, d_item]``)."""
        if tuple(vectors.shape) != (self.num_items, self.item_vectors.shape[1]):
            raise ValueError(
                f"expected item vectors of shape ({self.num_items}, {self.item_vectors.shape[1]}), got "
                f"{tuple(vectors.shape)}"
            )
        self.item_vectors[1:] = vectors.to(self.item_vectors)
        self.has_item_vectors = True

    def set_item_texts(self, texts: list[str]) -> None:
        """Tokenise the text of items 1..N once (trainable item LLM)."""
        if len(texts) != self.num_items:
            raise ValueError(f"expected the text of {self.num_items} items, got {len(texts)}")
        enc = self.tokenizer(
            [""] + list(texts), padding=True, truncation=True, max_length=self.config.item_max_tokens,
            return_tensors="pt",
        )  # fmt: skip
        self.register_buffer("item_tokens", enc["input_ids"], persistent=False)
        self.register_buffer("item_mask", enc["attention_mask"], persistent=False)
        self.has_item_vectors = False

    def encode_items(self, ids: Tensor) -> Tensor:
        """Item-LLM vectors of the items ``ids`` (any shape): each distinct item is encoded once."""
        if self.item_llm is None:
            if not self.has_item_vectors:
                raise RuntimeError(
                    "the item vectors are not set: call LiteLLM4RecModule.attach_catalogue() (done by setup, "
                    "recommend and zoo eval) before using the network"
                )
            return self.item_vectors[ids]
        if not self.training and self.has_item_vectors:  # cached for evaluation
            return self.item_vectors[ids]
        uniq, inverse = torch.unique(ids, return_inverse=True)
        real = uniq[uniq > 0]
        vecs = self.item_vectors.new_zeros(len(uniq), self.item_vectors.shape[1])
        if len(real):
            tok, mask = self.item_tokens[real], self.item_mask[real]
            width = int(mask.sum(1).max())
            h = self.item_llm(input_ids=tok[:, :width], attention_mask=mask[:, :width]).last_hidden_state
            vecs[uniq > 0] = _pool(h, mask[:, :width], self.config.item_pooling)
            self.item_calls += len(real)
        return vecs[inverse]

    @torch.no_grad()
    def cache_all_items(self) -> None:
        """Encode every item with the (trainable) item LLM into ``item_vectors`` for evaluation."""
        if self.item_llm is None:
            return
        vecs = []
        for start in range(1, self.num_items + 1, 256):
            ids = torch.arange(start, min(start + 256, self.num_items + 1), device=self.item_vectors.device)
            h = self.item_llm(input_ids=self.item_tokens[ids], attention_mask=self.item_mask[ids]).last_hidden_state
            vecs.append(_pool(h, self.item_mask[ids], self.config.item_pooling))
        self.item_vectors[1:] = torch.cat(vecs)
        self.has_item_vectors = True

    def train(self, mode: bool = True):
        if mode and self.item_llm is not None:
            self.has_item_vectors = False  # the item LLM changes: re-encode for the next evaluation
        return super().train(mode)

    # -- sequence ----------------------------------------------------------------------------------------------------
    def hidden(self, input: Tensor) -> Tensor:
        mask = (input > 0).long()
        x = self.item_proj(self.encode_items(input))
        if self.pos is not None:
            x = x + self.pos.weight[-input.shape[1] :]  # right-aligned: the last column is the latest item
        x = self.drop(x) * mask[..., None]
        kwargs = {}
        if "position_ids" in _forward_args(self.rec):
            kwargs["position_ids"] = _positions(mask)
        self._lora.sync(self)
        return self.rec(inputs_embeds=x, attention_mask=mask, **kwargs).last_hidden_state

    def logits(self, h: Tensor) -> Tensor:
        if self.head is not None:
            return self.head(h)
        all_ids = torch.arange(self.num_items + 1, device=h.device)
        return h @ self.item_proj(self.encode_items(all_ids)).T


class SASRecNet(RecNet):
    """SASRec: ID embeddings, causal self-attention, tied scoring (see the module docstring)."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = c = config
        self.num_items = c.num_items
        d = c.hidden
        self.emb = nn.Embedding(c.num_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(c.max_len, d)
        self.drop = nn.Dropout(c.dropout)
        layer = nn.TransformerEncoderLayer(d, c.heads, dim_feedforward=d, dropout=c.dropout, batch_first=True,
                                           norm_first=True)  # fmt: skip
        self.blocks = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        nn.init.normal_(self.emb.weight, std=d**-0.5)
        with torch.no_grad():
            self.emb.weight[0].zero_()

    def hidden(self, input: Tensor) -> Tensor:
        L = input.shape[1]
        pad = input == 0
        x = self.emb(input) * self.config.hidden**0.5 + self.pos.weight[-L:]
        x = self.drop(x) * (~pad)[..., None]
        # causal, and no attention to padding; every query may see itself, so no row is fully masked
        causal = torch.ones(L, L, dtype=torch.bool, device=input.device).triu(1)
        blocked = causal[None] | pad[:, None, :]
        blocked = blocked & ~torch.eye(L, dtype=torch.bool, device=input.device)[None]
        mask = torch.zeros(blocked.shape, device=input.device).masked_fill(blocked, -math.inf)
        mask = mask.repeat_interleave(self.config.heads, 0)
        return self.norm(self.blocks(x, mask=mask))

    def logits(self, h: Tensor) -> Tensor:
        return h @ self.emb.weight.T


def _pool(h: Tensor, mask: Tensor, pooling: str) -> Tensor:
    if pooling == "last":
        return h[torch.arange(h.shape[0], device=h.device), mask.sum(1) - 1]
    m = mask[..., None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1)


def _positions(mask: Tensor) -> Tensor:
    """Position ids of a left-padded ``mask`` ``[B, T]``: 0 at each row's first token (and on its padding)."""
    return (mask.cumsum(1) - 1).clamp(min=0)


def _forward_args(module: nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(module.forward).parameters)


def _tune(model: nn.Module, tuning: str, c) -> None:
    """Make ``model`` trainable as ``tuning`` says: ``"full"``, ``"frozen"`` or ``"lora"`` (peft LoRA adapters on
    every linear layer of the transformer blocks, the base frozen)."""
    if tuning == "full":
        return
    for p in model.parameters():
        p.requires_grad_(False)
    if tuning == "lora":
        from peft import LoraConfig, inject_adapter_in_model

        cfg = LoraConfig(r=c.lora_r, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                         target_modules=_linear_names(model))  # fmt: skip
        inject_adapter_in_model(cfg, model)
        for n, p in model.named_parameters():
            p.requires_grad_("lora_" in n)


class MergedLoRA:
    """Inference on merged LoRA weights for a network whose backbone carries peft LoRA adapters.

    Without gradients and in eval mode, each adapted linear layer runs as one matmul with ``W + s·B·A`` instead of
    three (about 20% less inference time for the SmolLM2 recommendation LLM on a CPU); whenever gradients are on
    or the network trains, the weights are unmerged first. Unmerging restores a copy of the base weights taken
    before the merge (``W + Δ − Δ`` is not ``W`` in floating point), so no drift accumulates over validation rounds;
    the copy costs the adapted layers' memory once while merged. ``state_dict`` and ``load_state_dict`` always see
    (and fill) the unmerged base weights, so checkpoints and fine-tuning never contain a merged delta.

    Args:
        net: the network (hooks are registered on it).
        backbone: the module whose LoRA layers are merged.
    """

    def __init__(self, net: nn.Module, backbone: nn.Module) -> None:
        self.layers = [m for m in backbone.modules() if hasattr(m, "lora_A") and hasattr(m, "merge")]
        self.saved: list[Tensor | None] = [None] * len(self.layers)  # base weights before the merge
        if self.layers:  # bound methods, not lambdas: the network stays picklable
            net.register_state_dict_pre_hook(self._unmerge)
            net.register_load_state_dict_pre_hook(self._unmerge)

    def _unmerge(self, *args) -> None:
        self.set(False)

    def set(self, merged: bool) -> None:
        for i, m in enumerate(self.layers):
            weight = m.get_base_layer().weight
            if merged and not m.merged:
                self.saved[i] = weight.detach().clone()
                m.merge()
            elif not merged and m.merged:
                m.unmerge()  # peft's bookkeeping; then the exact weights
                with torch.no_grad():
                    weight.copy_(self.saved[i])
                self.saved[i] = None

    def sync(self, net: nn.Module) -> None:
        """Merge for gradient-free eval-mode forwards, unmerge otherwise; call before every backbone forward."""
        self.set(not net.training and not torch.is_grad_enabled())


def _linear_names(model: nn.Module) -> list[str]:
    """Leaf names of the ``nn.Linear`` layers inside the transformer blocks (``q_proj``, ``query``, ``dense``...)."""
    names = set()
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and (".layers." in f".{name}" or ".layer." in f".{name}"):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)
