"""Model registry: families and pretrained checkpoints, after timm's ``register_model``.

A *family* names its LightningModule and data module by import path (so listing models imports neither
Lightning nor the optional dependencies) and carries the paper metadata. A *checkpoint* is registered by
decorating a builder that returns the family's model config; the function name, with dashes for underscores,
is the checkpoint id ``<family>-<variant>-<dataset>``.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Family", "ModelEntry", "register_family", "register_model", "get_family", "get_entry", "list_entries"]

# modules whose import registers families and checkpoints; one per family
_FAMILY_MODULES = (
    "zoo.models.conn", "zoo.models.gaug", "zoo.models.gmn", "zoo.models.textssl", "zoo.models.litellm4rec"
)  # fmt: skip


@dataclass(frozen=True)
class Family:
    """A method family.

    Args:
        name: family name, the first part of its checkpoint ids.
        module: ``"pkg.mod:Class"`` of the LightningModule.
        datamodule: ``"pkg.mod:Class"`` of the default data module.
        paper: title, ``arxiv``, ``authors``, ``year``, ``url`` of the paper.
        license: SPDX id of our implementation and weights.
        upstream: official code repository, if any.
        citation: BibTeX.
        extra: the pip extra that the family needs, or None for core only.
        card: ``"pkg.mod:function"`` returning ``(results, sections)`` of a checkpoint's card (see
            ``zoo.hub.build_card``), or None.
    """

    name: str
    module: str
    datamodule: str
    paper: dict
    license: str = "mit"
    upstream: str | None = None
    citation: str = ""
    extra: str | None = None
    card: str | None = None


@dataclass
class ModelEntry:
    """One pretrained checkpoint (a Hub repository under ``cards/<id>/``).

    Args:
        id: checkpoint id.
        family: family name.
        builder: returns the model config (optionally overridden).
        data: keyword arguments of the family's data module for this checkpoint's data.
        dataset: data set name shown in tables and cards.
        metric: primary metric name (a key of the test metrics).
        recipe: recipe path that trained it.
        sha256: sha256 of the shipped ``model.safetensors``; checked on load.
        summary: one-line description.
        hub_repo: Hub repository it is published to, if any.
        tags: extra card tags.
        card: ``"pkg.mod:function"`` of this checkpoint's card, instead of the family's (e.g. a pruned variant).
    """

    id: str
    family: str
    builder: Callable[..., Any]
    data: dict = field(default_factory=dict)
    dataset: str = ""
    metric: str = "accuracy"
    recipe: str = ""
    sha256: str | None = None
    summary: str = ""
    hub_repo: str | None = None
    tags: tuple[str, ...] = ()
    card: str | None = None


_FAMILIES: dict[str, Family] = {}
_ENTRIES: dict[str, ModelEntry] = {}
_LOADED = False


def register_family(family: Family) -> Family:
    """Register a family (idempotent for the same definition)."""
    _FAMILIES[family.name] = family
    return family


def register_model(**meta: Any) -> Callable:
    """Decorator registering a checkpoint whose id is the builder's name with ``_`` -> ``-``.

    Example::

        @register_model(family="conn", dataset="rmnist-10", data={"per_class": 10}, sha256="...")
        def conn_stochastic_rmnist10(**overrides) -> ConnConfig:
            return ConnConfig(autoencoder="mlp", **overrides)
    """

    def wrap(fn: Callable) -> Callable:
        entry = ModelEntry(id=fn.__name__.replace("_", "-"), builder=fn, **meta)
        if not entry.id.startswith(entry.family + "-"):
            raise ValueError(f"checkpoint id {entry.id!r} must start with its family name {entry.family!r}")
        _ENTRIES[entry.id] = entry
        return fn

    return wrap


def _load_all() -> None:
    global _LOADED
    if not _LOADED:
        for name in _FAMILY_MODULES:
            importlib.import_module(name)
        _LOADED = True


def get_family(name: str) -> Family:
    """The family called ``name``; raises ``KeyError`` listing the known ones."""
    _load_all()
    if name not in _FAMILIES:
        raise KeyError(f"unknown family {name!r}; known families: {sorted(_FAMILIES)}")
    return _FAMILIES[name]


def get_entry(model_id: str) -> ModelEntry:
    """The checkpoint ``model_id``; raises ``KeyError`` with close matches."""
    _load_all()
    if model_id not in _ENTRIES:
        import difflib

        close = difflib.get_close_matches(model_id, list(_ENTRIES), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise KeyError(
            f"unknown model id {model_id!r}.{hint} `zoo list` shows the {len(_ENTRIES)} registered checkpoints; "
            "from_pretrained also takes a local directory or a Hub repo id 'org/name'."
        )
    return _ENTRIES[model_id]


def list_entries(pattern: str = "*") -> list[ModelEntry]:
    """Registered checkpoints whose id matches the shell-style ``pattern``, sorted by id."""
    _load_all()
    return [e for i, e in sorted(_ENTRIES.items()) if fnmatch.fnmatchcase(i, pattern)]


def import_object(path: str) -> Any:
    """Import ``"pkg.module:attr"``."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def write_sha256(model_id: str, digest: str) -> None:
    """Record ``digest`` as the sha256 of ``model_id`` in its registry entry's source file (used by the scripts
    that build shipped checkpoints, so the registry and ``cards/`` never disagree)."""
    import inspect
    import re
    from pathlib import Path

    entry = get_entry(model_id)
    path = Path(inspect.getsourcefile(entry.builder))
    fn = entry.builder.__name__
    pattern = re.compile(rf'(sha256=")[0-9a-f]*("(?:(?!\ndef ).)*?\ndef {fn}\()', re.S)
    new, n = pattern.subn(rf"\g<1>{digest}\g<2>", path.read_text())
    if n != 1:
        raise RuntimeError(f"could not find the sha256 of {model_id} in {path}")
    path.write_text(new)
    entry.sha256 = digest
