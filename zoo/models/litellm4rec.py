"""Lite-LLM4Rec and its baselines (SASRec, a P5-style generative recommender): config, family and checkpoints.

Paper: Hanbing Wang, Xiaorui Liu, Wenqi Fan, Xiangyu Zhao, Venkataramana Kini, Devendra Yadav, Fei Wang, Zhen Wen,
Jiliang Tang, Hui Liu, "Rethinking Large Language Model Architectures for Sequential Recommendations",
arXiv:2402.09543 (IJCNLP-AACL 2025). No official code is public; this is an independent implementation from the
paper and ``../shared/papers/litellm4rec.md``. The networks are in ``zoo.litellm4rec``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from zoo.data.movielens import TEMPLATE

__all__ = ["LiteLLM4RecConfig", "ARCHS"]

ARCHS = ("lite", "sasrec", "generative")
TUNINGS = ("frozen", "lora", "full")


@dataclass
class LiteLLM4RecConfig:
    """Architecture of a litellm4rec network; every value is JSON-able.

    Args:
        arch: ``"lite"`` (Lite-LLM4Rec), ``"sasrec"`` or ``"generative"`` (P5-style, beam search over item ids).
        num_items: catalogue size N (items are 1..N, 0 is padding); set from the data.
        catalogue: hash of the item numbering (``MovieLens.catalogue_hash``); set from the data and checked.
        max_len: maximum history length L.
        item_backbone: the item LLM (an offline name, a local path or a Hub id; ``"tiny-llama"`` / ``"tiny-bert"``
            for tests).
        item_dim: width of the item LLM's states (set when the backbone is loaded).
        item_pooling: ``"last"`` (last token's hidden state, for decoders) or ``"mean"`` (encoders).
        item_template: the item text, with ``{title}``, ``{year}`` and ``{genres}``.
        item_max_tokens: truncation of item texts.
        item_tuning: ``"frozen"`` (vectors computed once and cached), ``"lora"`` or ``"full"`` (trained end to end).
        rec_backbone: the recommendation LLM (fed ``inputs_embeds``).
        rec_layers: keep only its first layers (None: all).
        rec_tuning: ``"lora"``, ``"full"`` or ``"frozen"`` (a checkpoint stores fully fine-tuned backbone matrices
            as int8 differences to the base weights: ``LiteLLM4RecModule.pack_state``).
        lora_r, lora_alpha, lora_dropout: LoRA adapters (peft) on every linear layer of the tuned blocks.
        head: ``"linear"`` (W h + b over all items) or ``"tied"`` (scores = projected item vectors · h).
        head_bias: bias of the linear head.
        pos_embedding: add a learned position embedding to the item vectors.
        pos_init_std: standard deviation of its normal initialisation (0.02, the transformers convention, keeps it
            small next to the projected item vectors; 1.0 is PyTorch's ``nn.Embedding`` default, which swamps
            low-norm item vectors such as MiniLM's mean-pooled ones).
        dropout: dropout on the input sequence (and in SASRec's blocks).
        loss_positions: ``"all"`` (next-item loss at every position) or ``"last"``.
        hidden, layers, heads: width, blocks and heads of SASRec.
        beam: beam width of the generative baseline.
    """

    DATA_FIELDS = ("num_items", "catalogue", "item_dim")

    arch: str = "lite"
    num_items: int = 0
    catalogue: str = ""
    max_len: int = 50
    item_backbone: str = "SmolLM2-135M-Instruct"
    item_dim: int = 0
    item_pooling: str = "last"
    item_template: str = TEMPLATE
    item_max_tokens: int = 48
    item_tuning: str = "frozen"
    rec_backbone: str = "SmolLM2-135M-Instruct"
    rec_layers: int | None = 4
    rec_tuning: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    head: str = "linear"
    head_bias: bool = True
    pos_embedding: bool = True
    pos_init_std: float = 0.02
    dropout: float = 0.1
    loss_positions: str = "all"
    hidden: int = 64
    layers: int = 2
    heads: int = 1
    beam: int = 20

    def __post_init__(self) -> None:
        checks = {
            "arch": (self.arch, ARCHS),
            "item_tuning": (self.item_tuning, TUNINGS),
            "rec_tuning": (self.rec_tuning, TUNINGS),
            "item_pooling": (self.item_pooling, ("last", "mean")),
            "head": (self.head, ("linear", "tied")),
            "loss_positions": (self.loss_positions, ("all", "last")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"expected {name} in {allowed}, got {value!r}")
        if self.max_len < 1 or self.num_items < 0 or (self.rec_layers is not None and self.rec_layers < 1):
            raise ValueError(
                f"expected max_len >= 1, num_items >= 0, rec_layers >= 1 or None; got {self.max_len}, "
                f"{self.num_items}, {self.rec_layers}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def build_net(config: LiteLLM4RecConfig, item_texts: list[str] | None = None):
    """The network of ``config.arch``."""
    if config.arch == "sasrec":
        from zoo.litellm4rec.nets import SASRecNet

        return SASRecNet(config)
    if config.arch == "generative":
        from zoo.litellm4rec.generative import GenerativeRecNet

        return GenerativeRecNet(config)
    from zoo.litellm4rec.nets import LiteLLM4RecNet

    return LiteLLM4RecNet(config, item_texts)


from zoo.registry import Family, register_family, register_model  # noqa: E402

register_family(
    Family(
        name="litellm4rec",
        module="zoo.methods.litellm4rec:LiteLLM4RecModule",
        datamodule="zoo.litellm4rec.data:SeqRecDataModule",
        paper={
            "title": "Rethinking Large Language Model Architectures for Sequential Recommendations",
            "arxiv": "2402.09543",
            "authors": [
                "Hanbing Wang",
                "Xiaorui Liu",
                "Wenqi Fan",
                "Xiangyu Zhao",
                "Venkataramana Kini",
                "Devendra Yadav",
                "Fei Wang",
                "Zhen Wen",
                "Jiliang Tang",
                "Hui Liu",
            ],  # fmt: skip
            "year": 2024,
            "url": "https://arxiv.org/abs/2402.09543",
        },
        license="apache-2.0",
        upstream=None,
        citation="""@article{wang2024rethinking,
  title   = {Rethinking Large Language Model Architectures for Sequential Recommendations},
  author  = {Wang, Hanbing and Liu, Xiaorui and Fan, Wenqi and Zhao, Xiangyu and Kini, Venkataramana and
             Yadav, Devendra and Wang, Fei and Wen, Zhen and Tang, Jiliang and Liu, Hui},
  journal = {arXiv preprint arXiv:2402.09543},
  year    = {2024}
}""",
        extra="text",
        card="zoo.methods.litellm4rec:card_sections",
    )
)

_TAGS = ["recommendation", "sequential-recommendation", "movielens"]


@register_model(
    family="litellm4rec",
    dataset="ml-1m",
    data={"dataset": "ml-1m"},
    metric="recall@10",
    recipe="recipes/litellm4rec/smollm2.yaml",
    sha256="3440d5502272679e15309d4b7161bd1265d12c1c6cae3fd7291741d9b3268373",
    summary="Lite-LLM4Rec on MovieLens-1M: SmolLM2-135M item LLM (frozen) and recommendation LLM (first 4 layers, "
    "fully fine-tuned), linear projection head over the 3,416 items.",
    tags=_TAGS,
)
def litellm4rec_smollm2_ml1m(**overrides) -> LiteLLM4RecConfig:
    return LiteLLM4RecConfig(**({"arch": "lite", "rec_tuning": "full", "dropout": 0.2} | overrides))


@register_model(
    family="litellm4rec",
    dataset="ml-1m",
    data={"dataset": "ml-1m"},
    metric="recall@10",
    recipe="recipes/litellm4rec/minilm.yaml",
    sha256="df73001d69f291cc3cb98ce785392b76249e2733352f247b940a6f76d5f124f2",
    summary="Lite-LLM4Rec on MovieLens-1M: all-MiniLM-L6-v2 as item LLM (frozen, mean-pooled) and as recommendation "
    "LLM (all 6 layers, causal, LoRA), linear projection head over the 3,416 items.",
    tags=_TAGS,
)
def litellm4rec_minilm_ml1m(**overrides) -> LiteLLM4RecConfig:
    base = {"arch": "lite", "item_backbone": "all-MiniLM-L6-v2", "item_pooling": "mean",
            "rec_backbone": "all-MiniLM-L6-v2", "rec_layers": None}  # fmt: skip
    return LiteLLM4RecConfig(**(base | overrides))


@register_model(
    family="litellm4rec",
    dataset="ml-1m",
    data={"dataset": "ml-1m"},
    metric="recall@10",
    recipe="recipes/litellm4rec/sasrec.yaml",
    sha256="959055a927b8e5a2517fd24b07a910e7f9d07577bfb7b8522b1da1390b4c9fb3",
    summary="SASRec (ID-based baseline) on MovieLens-1M, full-softmax cross-entropy, same protocol.",
    tags=_TAGS,
)
def litellm4rec_sasrec_ml1m(**overrides) -> LiteLLM4RecConfig:
    return LiteLLM4RecConfig(**({"arch": "sasrec", "hidden": 64, "layers": 2, "heads": 1, "dropout": 0.2} | overrides))
