"""The zoo: research methods as PyTorch Lightning modules with pretrained checkpoints on the Hugging Face Hub.

Public API: ``list_models``, ``create_model``, ``from_pretrained``, ``push_to_hub``. Importing ``zoo`` is cheap:
it loads no optional dependency (and not even torch); each function imports what it needs when called.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["list_models", "create_model", "from_pretrained", "push_to_hub", "__version__"]


def list_models(pattern: str = "*") -> list[str]:
    """Ids of the registered pretrained checkpoints matching a shell-style ``pattern`` (e.g. ``"conn-*"``)."""
    from zoo.registry import list_entries

    return [e.id for e in list_entries(pattern)]


def create_model(id_or_family: str, pretrained: bool = False, **overrides):
    """A fresh LightningModule for a checkpoint id or a family name.

    Args:
        id_or_family: a registered id (its architecture, ``zoo list``) or a family name (its default config).
        pretrained: load the id's weights (same as ``from_pretrained``; overrides are not allowed then).
        **overrides: model config fields to change, e.g. ``copies=8``; unknown fields raise ``TypeError``.
    """
    from zoo.registry import get_entry, get_family, import_object

    if pretrained:
        if overrides:
            raise ValueError(f"overrides {sorted(overrides)} cannot change a pretrained checkpoint's architecture")
        return from_pretrained(id_or_family)
    try:
        family = get_family(id_or_family)
        config = None
    except KeyError:
        entry = get_entry(id_or_family)
        family = get_family(entry.family)
        config = entry.builder()
    module_cls = import_object(family.module)
    if config is None:
        return module_cls(net=overrides or None)
    from dataclasses import replace

    return module_cls(net=replace(config, **overrides))


def from_pretrained(name_or_path, **kwargs):
    """Load a checkpoint (registered id, local directory or Hub repo ``org/name``) as a LightningModule in
    eval mode. See ``zoo.hub.from_pretrained``."""
    from zoo.hub import from_pretrained as _load

    return _load(name_or_path, **kwargs)


def push_to_hub(id_or_module, repo_id: str, **kwargs) -> str:
    """Create ``repo_id`` on the Hub and upload the checkpoint's ``model.safetensors``, ``config.json`` and
    ``README.md``. See ``zoo.hub.push_to_hub``."""
    from zoo.hub import push_to_hub as _push

    return _push(id_or_module, repo_id, **kwargs)
