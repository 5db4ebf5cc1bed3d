"""Checkpoints as Hugging Face Hub repositories: ``model.safetensors`` + ``config.json`` + ``README.md``.

Saving, loading and pushing go through ``huggingface_hub.ModelHubMixin`` (which routes a local directory or a
Hub repo id, honours ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and the cache, and uploads in one commit); cards are
``huggingface_hub.ModelCard`` objects with ``model-index`` results from ``EvalResult``. What the zoo adds:

* ``config.json`` holds everything needed to rebuild the plain ``nn.Module`` (family, model config, labels,
  base model) and the sha256 of ``model.safetensors``;
* loading is strict and atomic: a truncated or tampered file, a missing config field, a missing or unexpected
  key or a shape mismatch raises ``CheckpointError`` naming the file and the key, and nothing is half-loaded;
* registered ids load ``cards/<id>/`` shipped in the repository, after checking the registry's sha256.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from huggingface_hub import ModelCard, ModelCardData, ModelHubMixin
from huggingface_hub.repocard_data import EvalResult

from zoo import registry
from zoo.data import sha256_file

__all__ = [
    "CheckpointError",
    "ZooModule",
    "SavePretrained",
    "cards_dir",
    "from_pretrained",
    "push_to_hub",
    "read_state",
    "build_card",
    "WEIGHTS",
    "CONFIG",
    "CARD",
]

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
FORMAT_VERSION = 1
REQUIRED_FIELDS = ("format_version", "family", "config", "hparams", "weights_sha256")


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupted, or does not match the architecture it is loaded into."""


def cards_dir() -> Path:
    """Folder of the shipped checkpoints: ``$ZOO_CARDS`` or ``<repository>/cards``."""
    return Path(os.environ.get("ZOO_CARDS") or Path(__file__).resolve().parent.parent / "cards")


def _jsonable(value: Any) -> Any:
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def read_state(path: Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a safetensors file completely, after checking its sha256 if one is expected."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; a checkpoint needs {WEIGHTS}, {CONFIG} and {CARD}")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CheckpointError(
                f"{path} has sha256 {actual}, expected {expected_sha256}: the file is truncated or was modified. "
                "Restore it (git checkout / re-download with force_download=True) and try again."
            )
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e}); it may be truncated") from e


def check_state(
    own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: Path, strict: bool = True, name: str = ""
) -> None:
    """Raise ``CheckpointError`` unless ``state`` fits the expected state ``own`` (of a network called ``name``).

    With ``strict``, keys must match exactly; without, every key of ``state`` must exist in ``own`` (the
    module's other keys keep their values, as when fine-tuning a head on a pretrained body). Shapes must match.
    """
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    problems = []
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if strict and missing:
        problems.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            problems.append(f"key {k!r} has shape {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model")
            break
    if problems:
        raise CheckpointError(
            f"{source} does not fit {name or 'the network'}: " + "; ".join(problems) + ". The weights belong to "
            "another architecture or config; load them with the config.json saved beside them."
        )


class ZooModule(L.LightningModule, ModelHubMixin, library_name="zoo", tags=["zoo", "pytorch-lightning"]):
    """Base LightningModule of every family: Hub save/load/push plus fine-tuning from a checkpoint.

    Subclasses set ``family`` and build ``self.net`` (the plain ``nn.Module``) from ``self.net_config`` (a
    dataclass); ``hparams`` must be JSON-able after ``save_hyperparameters()``.
    """

    family: str = ""
    model_id: str | None = None
    labels: list[str] | None = None

    def hub_config(self) -> dict:
        """The content of ``config.json`` (without the weights' sha256)."""
        accepted = inspect.signature(type(self).__init__).parameters
        hparams = {k: _jsonable(v) for k, v in self.hparams.items() if k in accepted and k not in ("net", "init_from")}
        return {
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "zoo_id": self.model_id,
            "config": _jsonable(self.net_config),
            "hparams": hparams,
            "labels": self.labels,
            "base_model": getattr(self, "base_model", None),
            "sparsity": getattr(self, "sparsity", None),
        }

    # -- ModelHubMixin hooks ---------------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_file

        save_directory = Path(save_directory)
        state = self.pack_state({k: v.detach().contiguous().cpu() for k, v in self.saved_state().items()})
        save_file(state, save_directory / WEIGHTS, metadata={"format": "pt", "family": self.family})
        config = self.hub_config() | {"weights_sha256": sha256_file(save_directory / WEIGHTS)}
        (save_directory / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if not (save_directory / CARD).exists():
            build_card(self.model_id, module=self).save(save_directory / CARD)

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        **kwargs,
    ) -> ZooModule:
        # config.json is read here rather than taken from the mixin, which spreads its keys into **kwargs
        def fetch(filename: str) -> Path:
            if os.path.isdir(model_id):
                return Path(model_id) / filename
            from huggingface_hub import hf_hub_download

            return Path(
                hf_hub_download(
                    model_id,
                    filename,
                    revision=revision,
                    cache_dir=cache_dir,
                    force_download=force_download,
                    local_files_only=local_files_only,
                    token=token,
                )
            )

        config_path = fetch(CONFIG)
        try:
            config = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{config_path} is missing or not valid JSON ({e}); a zoo checkpoint needs it") from e
        if not isinstance(config, dict):
            raise CheckpointError(f"{config_path} must hold a JSON object, got {type(config).__name__}")
        weights = fetch(WEIGHTS)
        missing = [f for f in REQUIRED_FIELDS if f not in config]
        if missing:
            raise CheckpointError(f"{config_path} lacks the field(s) {missing}; expected all of {REQUIRED_FIELDS}")
        family = registry.get_family(config["family"])
        module_cls = registry.import_object(family.module)
        if cls is not ZooModule and not issubclass(module_cls, cls):
            raise CheckpointError(f"{config_path} is a {config['family']!r} checkpoint, not a {cls.__name__}")
        state = read_state(weights, config["weights_sha256"])
        try:
            module = module_cls(net=config["config"], **config["hparams"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{config_path} has a config that {module_cls.__name__} rejects: {e}") from e
        if config.get("sparsity"):
            _tvw_skeleton(module, config["sparsity"], config_path)
        own = module.saved_state()
        state = module.unpack_state(state, weights)
        check_state(own, state, weights, name=type(module.net).__name__)
        # strict above; the network's other keys (a frozen pretrained backbone) keep their loaded values
        module.net.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
        module.model_id = config.get("zoo_id")
        module.labels = config.get("labels")
        return module.eval()

    def saved_state(self) -> dict[str, torch.Tensor]:
        """What ``save_pretrained`` writes and loading expects: all of ``self.net``'s state unless a family saves
        less (e.g. only adapters and heads over a frozen pretrained backbone named by ``base_model``)."""
        return self.net.state_dict()

    def pack_state(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The tensors written to the weights file for ``state`` (``saved_state()``): ``state`` itself unless a
        family stores a compact form (``unpack_state`` is then its inverse)."""
        return state

    def unpack_state(self, stored: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
        """The ``saved_state()`` tensors of the weights file ``source`` (read into ``stored``), on a freshly built
        module; raises ``CheckpointError`` when the file's compact form is incomplete."""
        return stored

    def init_weights_from(self, source: str) -> None:
        """Fine-tuning start: copy the weights of checkpoint ``source`` (id, directory or Hub repo) into
        ``self.net``. Every key of the checkpoint must exist here with the same shape; keys only here keep their
        initial values (e.g. a classifier trained on top of a pretrained autoencoder)."""
        state = self.transferable_state(from_pretrained(source))
        check_state(self.net.state_dict(), state, Path(str(source)), strict=False, name=type(self.net).__name__)
        self.net.load_state_dict(state, strict=False)

    def transferable_state(self, other: ZooModule) -> dict[str, torch.Tensor]:
        """The weights of ``other`` that ``init_weights_from`` copies (all of them unless a family says)."""
        return other.net.state_dict()


def _tvw_skeleton(module: ZooModule, sparsity: dict, config_path: Path) -> None:
    """Swap the pruned layers of a freshly built module for empty TVW layers of the recorded layouts, so that the
    compact weights of a pruned checkpoint load into them strictly."""
    from zoo.pruning.tvw import to_tvw

    layouts = {name: rec["layout"] for name, rec in sparsity.get("layers", {}).items() if rec.get("layout")}
    try:
        to_tvw(module.net, layouts, pack_weights=False)
        module.sparsity = sparsity
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{config_path} records a sparsity layout this architecture rejects: {e}") from e


def pack_pruned(module: ZooModule) -> dict | None:
    """Make the pruning of ``module.net`` permanent and move its TW/TVW layers into the compact format.

    The record of the pruned layers (pattern, density and tile layout, names relative to ``module.net``) is kept as
    ``module.sparsity = {"layers": ...}`` and goes into ``config.json``; ``from_pretrained`` rebuilds the TVW layers
    from it. Layers of other patterns stay dense, with their zeros. Returns the record, or None when nothing is
    pruned. ``TVWPruning`` may already have made the pruning permanent (its ``record``).
    """
    from zoo.pruning.patterns import make_permanent, pruned_layers
    from zoo.pruning.tvw import to_tvw

    record = getattr(module, "sparsity_record", None) or {}
    if pruned_layers(module.net):
        record = {**record, **{f"net.{k}": v for k, v in make_permanent(module.net).items()}}
    if not record:
        return None
    layers = {name.removeprefix("net."): rec for name, rec in record.items()}
    to_tvw(module.net, {name: rec["layout"] for name, rec in layers.items() if rec["layout"]})
    module.sparsity = {"layers": layers}
    return module.sparsity


class SavePretrained(L.Callback):
    """Save the trained module as a Hub-layout folder (``model.safetensors``, ``config.json``, ``README.md``) at
    the end of ``fit``, so a recipe's result loads with ``zoo.from_pretrained(dirpath)``.

    Args:
        dirpath: output folder (created; existing files are replaced).
        model_id: registered id to record in ``config.json`` (its card and test data), if any.
    """

    def __init__(self, dirpath: str, model_id: str | None = None) -> None:
        self.dirpath, self.model_id = dirpath, model_id

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            if self.model_id:
                pl_module.model_id = self.model_id
            Path(self.dirpath).mkdir(parents=True, exist_ok=True)
            (Path(self.dirpath) / CARD).unlink(missing_ok=True)
            pack_pruned(pl_module)  # a pruned model is saved in its compact format, with its layout
            pl_module.save_pretrained(self.dirpath)


def from_pretrained(name_or_path: str | os.PathLike, **kwargs) -> ZooModule:
    """Load a checkpoint as its LightningModule, in eval mode.

    Args:
        name_or_path: a registered id (``zoo list``), a local directory with the three files, or a Hub repo id
            ``"org/name"`` (downloaded with ``huggingface_hub``; honours ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``).
        **kwargs: passed to ``ModelHubMixin.from_pretrained`` (``revision``, ``cache_dir``, ``token``, ...).
    """
    name = str(name_or_path)
    if os.path.isdir(name):
        return ZooModule.from_pretrained(name, **kwargs)
    if "/" not in name:
        entry = registry.get_entry(name)
        folder = cards_dir() / entry.id
        if not (folder / WEIGHTS).exists():
            if entry.hub_repo:
                return from_pretrained(entry.hub_repo, **kwargs)
            raise CheckpointError(f"{folder / WEIGHTS} is missing: the shipped checkpoint of {entry.id!r} is not here")
        if not entry.sha256:
            raise CheckpointError(f"{entry.id!r} has no sha256 in the registry; run scripts that build it first")
        actual = sha256_file(folder / WEIGHTS)
        if actual != entry.sha256:
            raise CheckpointError(
                f"{folder / WEIGHTS} has sha256 {actual}, but the registry records {entry.sha256} for {entry.id!r}: "
                "the file is truncated or was modified. Restore it with `git checkout -- cards/` and retry."
            )
        module = ZooModule.from_pretrained(str(folder), **kwargs)
        module.model_id = entry.id
        return module
    return ZooModule.from_pretrained(name, **kwargs)


def push_to_hub(id_or_module: str | ZooModule, repo_id: str, *, token: str | None = None, private: bool = False) -> str:
    """Create ``repo_id`` on the Hub and upload the checkpoint's three files in one commit.

    A registered id uploads its shipped folder byte for byte; a module is saved first (weights, config, card).
    Returns the commit URL.
    """
    if isinstance(id_or_module, ZooModule):
        return str(id_or_module.push_to_hub(repo_id, token=token, private=private))
    from huggingface_hub import HfApi

    entry = registry.get_entry(str(id_or_module))
    folder = cards_dir() / entry.id
    from_pretrained(entry.id)  # verifies the files before anything is uploaded
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=f"Upload {entry.id} from the zoo")
    return str(info)


def build_card(
    model_id: str | None,
    module: ZooModule | None = None,
    results: list[dict] | None = None,
    sections: dict[str, str] | None = None,
) -> ModelCard:
    """A model card in the Hugging Face template, from registry metadata and measured results.

    Args:
        model_id: registered id, or None for a module trained by the user.
        module: the module (used when ``model_id`` is None).
        results: measured metrics, each ``{"metric", "value", "dataset", "dataset_name", "task", "split"}``;
            they become ``model-index`` entries.
        sections: markdown for ``details``, ``uses``, ``limitations``, ``start``, ``training``, ``evaluation``.
    """
    sections = dict(sections or {})
    family = registry.get_family(module.family if module is not None and model_id is None else _family_of(model_id))
    entry = registry.get_entry(model_id) if model_id else None
    name = model_id or f"{family.name} model"
    eval_results = [
        EvalResult(
            task_type=r.get("task", "image-classification"),
            dataset_type=r["dataset"],
            dataset_name=r.get("dataset_name", r["dataset"]),
            dataset_split=r.get("split", "test"),
            metric_type=r["metric"],
            metric_name=r.get("metric_name", r["metric"]),
            metric_value=r["value"],
        )
        for r in results or []
    ]
    data = ModelCardData(
        license=family.license,
        library_name="zoo",
        tags=["zoo", family.name, *(entry.tags if entry else ())],
        datasets=[entry.dataset] if entry and entry.dataset else None,
        metrics=[entry.metric] if entry else None,
        model_name=name,
        eval_results=eval_results or None,
    )
    paper = family.paper
    load = f'zoo.from_pretrained("{model_id}")' if model_id else 'zoo.from_pretrained("path/or/org-name")'
    body = [
        f"# {name}",
        "",
        entry.summary if entry else f"A {family.name} checkpoint trained with the zoo.",
        "",
        "## Model details",
        "",
        f"- Paper: {paper['title']} ({', '.join(paper.get('authors', []))}, {paper.get('year', '')}), "
        f"[arXiv:{paper['arxiv']}](https://arxiv.org/abs/{paper['arxiv']})",
        f"- Upstream code: {family.upstream or 'none published'}",
        f"- Implementation: the zoo, family `{family.name}`; license {family.license.upper()}",
        sections.pop("details", ""),
        "",
        "## Uses",
        "",
        sections.pop("uses", "Research on the paper's method; see the limitations before any other use."),
        "",
        "## Limitations",
        "",
        sections.pop("limitations", "Not evaluated beyond the data named below."),
        "",
        "## How to get started",
        "",
        "```python",
        "import zoo",
        f"model = {load}  # a LightningModule in eval mode; model.net is the plain nn.Module",
        "```",
        sections.pop("start", ""),
        "",
        "## Training data and procedure",
        "",
        sections.pop("training", f"Recipe: `{entry.recipe}`." if entry else _config_block(module)),
        "",
        "## Evaluation",
        "",
        sections.pop("evaluation", "Not evaluated."),
        "",
        "## Citation",
        "",
        "```bibtex",
        family.citation.strip(),
        "```",
        "",
    ]
    for title, text in sections.items():
        body[-1:-1] = [f"## {title}", "", text, ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def _config_block(module: ZooModule | None) -> str:
    if module is None:
        return ""
    config = json.dumps(module.hub_config(), indent=2, sort_keys=True)
    return f"Trained by the user with the zoo; the configuration saved with it:\n\n```json\n{config}\n```"


def _family_of(model_id: str) -> str:
    return registry.get_entry(model_id).family
