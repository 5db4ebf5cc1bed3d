"""Node-classification graphs for GAug (arXiv 2006.06830): GAug's own Cora / CiteSeer pickles with its splits, the
Planetoid ``ind.*`` files, or any user graph given as tensors.

* ``$ZOO_DATA/gaug/<ds>_{adj,features,labels,tvt_nids}.pkl`` (zhao-tong/GAug ``data/graphs/``, MIT): scipy CSR
  adjacency with self-loops, CSR features, a pickled torch LongTensor of labels, and three index arrays.
* ``$ZOO_DATA/planetoid/ind.<ds>.{x,y,tx,ty,allx,ally,graph,test.index}`` (tkipf/gcn ``gcn/data/``, MIT): the
  Planetoid split (train = the first ``len(y)`` nodes, validation the next 500, test the listed 1,000).

Pickles are opened only with ``restricted_load``: an unpickler that admits NumPy arrays and dtypes, CSR matrices
(rebuilt without scipy), torch tensors and the plain containers these files hold; any other global (a function,
``os.system``, ...) raises ``pickle.UnpicklingError``. Nothing here needs scipy.

Every graph is checked by ``check_graph`` (features present, labels in range, edge index in bounds, masks) and
comes out as a ``torch_geometric.data.Data`` with ``x``, ``y``, ``edge_index`` (undirected, no self-loops) and
``train_mask`` / ``val_mask`` / ``test_mask``.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from zoo.data import verify_files

__all__ = [
    "DATASETS",
    "SOURCES_",
    "restricted_load",
    "CSRMatrix",
    "load_gaug_graph",
    "load_planetoid_graph",
    "load_edge_scores",
    "check_graph",
    "GraphDataModule",
]

DATASETS = ("cora", "citeseer")
SOURCES_ = ("gaug", "planetoid")
FEAT_NORMS = ("row", "none")


def _require_pyg():
    try:
        import torch_geometric  # noqa: F401
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "the gaug family needs torch_geometric; install the extra with `pip install zoo[graph]`"
        ) from e


# -- restricted unpickling --------------------------------------------------------------------------------------------
class CSRMatrix:
    """Stand-in for ``scipy.sparse.csr_matrix`` while unpickling: keeps ``data``, ``indices``, ``indptr`` and
    the shape, and converts to torch. Pickled CSR matrices are rebuilt as ``NEWOBJ`` + ``BUILD`` of their
    ``__dict__``, so no scipy code runs."""

    def __setstate__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"expected the state dict of a CSR matrix, got {type(state).__name__}")
        for key in ("data", "indices", "indptr"):
            if not isinstance(state.get(key), np.ndarray):
                raise pickle.UnpicklingError(f"CSR matrix state lacks the array {key!r}")
        self.data, self.indices, self.indptr = state["data"], state["indices"], state["indptr"]
        shape = state.get("_shape", state.get("shape"))
        if not (isinstance(shape, tuple) and len(shape) == 2):
            raise pickle.UnpicklingError(f"CSR matrix state has no 2-D shape, got {shape!r}")
        self.shape = (int(shape[0]), int(shape[1]))

    def coo(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(row, col, value)`` tensors of the non-zeros."""
        counts = np.diff(self.indptr.astype(np.int64))
        row = torch.from_numpy(np.repeat(np.arange(self.shape[0], dtype=np.int64), counts))
        col = torch.from_numpy(self.indices.astype(np.int64))
        return row, col, torch.from_numpy(np.asarray(self.data, dtype=np.float32))

    def to_dense(self) -> Tensor:
        row, col, val = self.coo()
        out = torch.zeros(self.shape, dtype=torch.float32)
        out.index_put_((row, col), val, accumulate=True)
        return out


def _load_storage_bytes(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True)


def _allowed() -> dict[tuple[str, str], object]:
    from collections import OrderedDict, defaultdict

    from numpy._core.multiarray import _reconstruct

    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("scipy.sparse.csr", "csr_matrix"): CSRMatrix,
        ("scipy.sparse._csr", "csr_matrix"): CSRMatrix,
        ("collections", "OrderedDict"): OrderedDict,
        ("collections", "defaultdict"): defaultdict,
        ("__builtin__", "list"): list,
        ("builtins", "list"): list,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    }


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        allowed = _allowed()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(
                f"refusing to unpickle the global {module}.{name}: graph pickles may hold only arrays, sparse "
                f"matrices and tensors (allowed: {sorted(f'{m}.{n}' for m, n in allowed)})"
            )
        return allowed[(module, name)]


def restricted_load(path, encoding: str = "ASCII"):
    """Unpickle ``path`` admitting only arrays, CSR matrices (as ``CSRMatrix``), tensors and plain containers.

    Args:
        path: the pickle file, or a binary file object open for reading.
        encoding: how Python-2 strings are decoded (``"latin1"`` for the Planetoid files).
    """
    if hasattr(path, "read"):
        return _RestrictedUnpickler(path, encoding=encoding).load()
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, encoding=encoding).load()


# -- loaders ----------------------------------------------------------------------------------------------------------
def _masks(n: int, *index: Tensor) -> list[Tensor]:
    out = []
    for idx in index:
        m = torch.zeros(n, dtype=torch.bool)
        m[idx] = True
        out.append(m)
    return out


def _undirected_no_loops(row: Tensor, col: Tensor, n: int) -> Tensor:
    from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

    edge_index, _ = remove_self_loops(torch.stack([row, col]))
    return coalesce(to_undirected(edge_index, num_nodes=n), num_nodes=n)


def load_gaug_graph(name: str):
    """GAug's pickled graph ``name`` (``cora`` or ``citeseer``) with GAug's train / val / test split.

    Returns:
        ``Data(x [N, F] float32 (raw), y [N], edge_index [2, 2|E|], train/val/test_mask [N])``; the adjacency's
        self-loops are dropped (the models add them back where the formulas say Ã = A + I).
    """
    _require_pyg()
    from torch_geometric.data import Data

    if name not in DATASETS:
        raise ValueError(f"expected a GAug data set in {DATASETS}, got {name!r}")
    files = [f"{name}_adj.pkl", f"{name}_features.pkl", f"{name}_labels.pkl", f"{name}_tvt_nids.pkl"]
    adj_p, feat_p, lab_p, tvt_p = verify_files("gaug", files)
    adj, feats, labels, tvt = (restricted_load(p) for p in (adj_p, feat_p, lab_p, tvt_p))
    n = adj.shape[0]
    row, col, _ = adj.coo()
    x = feats.to_dense() if isinstance(feats, CSRMatrix) else torch.as_tensor(np.asarray(feats), dtype=torch.float32)
    y = torch.as_tensor(labels).long().view(-1)
    train, val, test = (torch.as_tensor(np.asarray(t), dtype=torch.long) for t in tvt)
    train_mask, val_mask, test_mask = _masks(n, train, val, test)
    data = Data(x=x.float(), y=y, edge_index=_undirected_no_loops(row, col, n))
    data.train_mask, data.val_mask, data.test_mask = train_mask, val_mask, test_mask
    return data


def load_planetoid_graph(name: str):
    """The Planetoid split of ``name`` from the ``ind.<name>.*`` files (Kipf & Welling's construction).

    Test nodes are placed at the ids listed in ``test.index``; CiteSeer's 15 isolated ids that have no test row get
    zero features and label 0 and belong to no split. Train = the first ``len(y)`` nodes, validation the next 500.
    """
    _require_pyg()
    from torch_geometric.data import Data

    if name not in DATASETS:
        raise ValueError(f"expected a Planetoid data set in {DATASETS} (PubMed lacks ind.pubmed.allx), got {name!r}")
    keys = ("x", "y", "tx", "ty", "allx", "ally", "graph")
    paths = verify_files("planetoid", [f"ind.{name}.{k}" for k in keys] + [f"ind.{name}.test.index"])
    obj = {k: restricted_load(p, encoding="latin1") for k, p in zip(keys, paths)}
    test_index = torch.tensor([int(s) for s in paths[-1].read_text().split()], dtype=torch.long)
    allx, tx = obj["allx"].to_dense(), obj["tx"].to_dense()
    ally = torch.from_numpy(np.asarray(obj["ally"])).float()
    ty = torch.from_numpy(np.asarray(obj["ty"])).float()
    n = max(int(test_index.max()) + 1, len(allx) + len(tx))
    x = torch.zeros(n, allx.shape[1])
    y1 = torch.zeros(n, ally.shape[1])
    x[: len(allx)], y1[: len(ally)] = allx, ally
    x[test_index], y1[test_index] = tx, ty  # row k of tx belongs to the k-th id of test.index (file order)
    y = y1.argmax(1)
    graph = obj["graph"]
    src = [int(i) for i, nbrs in graph.items() for _ in nbrs]
    dst = [int(j) for _, nbrs in graph.items() for j in nbrs]
    n = max(n, len(graph))
    n_train = len(np.asarray(obj["y"]))
    train = torch.arange(n_train)
    val = torch.arange(n_train, n_train + 500)
    data = Data(x=x, y=y, edge_index=_undirected_no_loops(torch.tensor(src), torch.tensor(dst), n))
    data.train_mask, data.val_mask, data.test_mask = _masks(n, train, val, test_index)
    return data


EDGE_SCORE_SUFFIXES = (".pkl", ".npy", ".pt")


def load_edge_scores(path: str | Path, num_nodes: int | None = None) -> Tensor:
    """A dense ``[N, N]`` matrix of pair scores for GAug-M's edit, read from a file.

    The official GAug-M edits Cora and CiteSeer with edge probabilities that its ``vgae/`` wrote as pickled dense
    NumPy arrays (``data/edge_probabilities/<ds>_graph_<i>_logits.pkl``, σ(Z Zᵀ) with a zero diagonal; ``i`` is the
    draw in ``best_parameters.json``). Those files are read here through ``restricted_load``, never a plain
    ``pickle.load``; ``.npy`` (``np.load`` without pickles) and ``.pt`` (``torch.load(weights_only=True)``) files
    work too. Only the order of the scores matters to the edit, so probabilities and logits give the same graph
    (up to float32 ties among probabilities that round to 1).

    Args:
        path: ``.pkl``, ``.npy`` or ``.pt`` file holding one square float matrix (an array or a tensor).
        num_nodes: when given, the matrix must be ``[num_nodes, num_nodes]``.

    Returns:
        The scores as a float32 tensor ``[N, N]``.
    """
    path = Path(path)
    if path.suffix not in EDGE_SCORE_SUFFIXES:
        raise ValueError(f"expected an edge-score file ending in {EDGE_SCORE_SUFFIXES}, got {str(path)!r}")
    if not path.is_file():
        raise FileNotFoundError(
            f"edge-score file {str(path)!r} not found: GAug-M's edge_probs names a dense N x N matrix of edge "
            "probabilities (e.g. the official data/edge_probabilities/cora_graph_5_logits.pkl of zhao-tong/GAug); "
            "put the file there, or set edge_probs to null to train the VGAE instead"
        )
    if path.suffix == ".pkl":
        obj = restricted_load(path)
    elif path.suffix == ".npy":
        obj = np.load(path, allow_pickle=False)
    else:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(obj, (np.ndarray, Tensor)):
        raise ValueError(f"expected {str(path)!r} to hold one array or tensor, got {type(obj).__name__}")
    scores = torch.as_tensor(obj).float()
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"expected a square [N, N] score matrix in {str(path)!r}, got shape {tuple(scores.shape)}")
    if num_nodes is not None and scores.shape[0] != num_nodes:
        raise ValueError(
            f"the score matrix in {str(path)!r} is for {scores.shape[0]} nodes, the graph has {num_nodes}: "
            "use the file written for this graph (same nodes, same order)"
        )
    if not torch.isfinite(scores).all():
        raise ValueError(f"the score matrix in {str(path)!r} holds NaN or infinite values")
    return scores


def check_graph(data, num_classes: int | None = None) -> None:
    """Raise ``ValueError`` unless ``data`` is a usable node-classification graph.

    Checks: ``x`` is a 2-D float tensor with one row per node; ``y`` is a 1-D integer tensor with labels in
    ``[0, num_classes)`` (when given) and non-negative; ``edge_index`` is ``[2, E]`` integer with ids in
    ``[0, N)``; the three masks are boolean of length ``N`` with a non-empty training mask.
    """
    x = getattr(data, "x", None)
    if x is None or not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] == 0:
        got = "none" if x is None else f"{type(x).__name__} of shape {tuple(getattr(x, 'shape', ()))}"
        raise ValueError(
            f"expected node features x of shape [N, F] with F >= 1, got {got}; for a graph without features "
            "use e.g. one-hot node ids or degrees (torch_geometric.transforms.OneHotDegree) as x"
        )
    if not x.is_floating_point():
        raise ValueError(f"expected floating-point node features x, got dtype {x.dtype}; convert with x.float()")
    n = x.shape[0]
    y = getattr(data, "y", None)
    if y is None or y.dim() != 1 or y.shape[0] != n or y.is_floating_point():
        got = "none" if y is None else f"shape {tuple(y.shape)}, dtype {y.dtype}"
        raise ValueError(f"expected integer labels y of shape [{n}] (one per node), got {got}")
    if n and int(y.min()) < 0:
        raise ValueError(f"expected labels y >= 0, got a minimum of {int(y.min())}; relabel the classes 0..C-1")
    if num_classes is not None and n and int(y.max()) >= num_classes:
        raise ValueError(
            f"expected labels y in [0, {num_classes}) for a model with {num_classes} classes, got a maximum of "
            f"{int(y.max())}; set net.num_classes to 0 (infer) or to at least {int(y.max()) + 1}"
        )
    ei = getattr(data, "edge_index", None)
    if ei is None or ei.dim() != 2 or ei.shape[0] != 2 or ei.is_floating_point():
        raise ValueError(
            f"expected an integer edge_index of shape [2, E], got {None if ei is None else tuple(ei.shape)}"
        )
    if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
        raise ValueError(
            f"edge_index holds node ids in [{int(ei.min())}, {int(ei.max())}], but the graph has {n} nodes "
            f"(x has {n} rows): ids must lie in [0, {n})"
        )
    for key in ("train_mask", "val_mask", "test_mask"):
        m = getattr(data, key, None)
        if m is None or m.dtype != torch.bool or m.shape != (n,):
            got = None if m is None else f"{m.dtype} of shape {tuple(m.shape)}"
            raise ValueError(f"expected a boolean {key} of shape [{n}], got {got}")
    if not bool(data.train_mask.any()):
        raise ValueError("train_mask selects no node; at least one labelled training node is needed")


def _normalise_features(x: Tensor, how: str) -> Tensor:
    if how == "row":  # L1 row normalisation, as GAug's feat_norm='row'; all-zero rows stay zero
        return x / x.abs().sum(1, keepdim=True).clamp_min(1e-12)
    return x


class GraphDataModule(L.LightningDataModule):
    """One full graph as the only batch of every loader (full-batch semi-supervised node classification).

    The batch is a ``torch_geometric.data.Data`` with ``x``, ``y``, ``edge_index`` (undirected, no self-loops)
    and the three masks; ``num_features`` and ``num_classes`` are known after ``setup``.

    Args:
        name: ``"cora"`` or ``"citeseer"`` (ignored when ``path`` is given).
        source: ``"gaug"`` (GAug's pickles and split, the paper's) or ``"planetoid"`` (the ``ind.*`` files).
        path: a user graph instead: a file written by ``torch.save({"x", "y", "edge_index", "train_mask",
            "val_mask", "test_mask"})`` (tensors only; read with ``weights_only=True``).
        feat_norm: ``"row"`` (L1-normalise feature rows, GAug's default) or ``"none"``.
    """

    def __init__(self, name: str = "cora", source: str = "gaug", path: str | None = None, feat_norm: str = "row"):
        super().__init__()
        if source not in SOURCES_:
            raise ValueError(f"expected source in {SOURCES_}, got {source!r}")
        if feat_norm not in FEAT_NORMS:
            raise ValueError(f"expected feat_norm in {FEAT_NORMS}, got {feat_norm!r}")
        if path is None and name not in DATASETS:
            raise ValueError(f"expected name in {DATASETS} (or a graph file as path), got {name!r}")
        self.save_hyperparameters()
        self.name, self.source, self.path, self.feat_norm = name, source, path, feat_norm
        self.graph = None

    @classmethod
    def from_data(cls, data, feat_norm: str = "row") -> GraphDataModule:
        """A data module serving the given ``Data`` (or any object with the same attributes)."""
        dm = cls(path="<in memory>", feat_norm=feat_norm)
        dm._set(data)
        return dm

    def _set(self, data) -> None:
        _require_pyg()
        from torch_geometric.data import Data

        check_graph(data)
        out = Data(x=_normalise_features(data.x.float(), self.feat_norm), y=data.y.long(), edge_index=data.edge_index)
        out.edge_index = _undirected_no_loops(data.edge_index[0].long(), data.edge_index[1].long(), data.x.shape[0])
        out.train_mask, out.val_mask, out.test_mask = data.train_mask, data.val_mask, data.test_mask
        self.graph = out

    def setup(self, stage: str | None = None) -> None:
        if self.graph is not None:
            return
        if self.path is not None:
            raw = torch.load(self.path, weights_only=True)
            if not isinstance(raw, dict):
                raise ValueError(f"expected {self.path} to hold a dict of tensors, got {type(raw).__name__}")
            from types import SimpleNamespace

            self._set(SimpleNamespace(**raw))
        else:
            load = load_gaug_graph if self.source == "gaug" else load_planetoid_graph
            self._set(load(self.name))

    @property
    def num_features(self) -> int:
        return int(self.graph.x.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.graph.y.max()) + 1

    def _loader(self) -> DataLoader:
        return DataLoader([self.graph], batch_size=None, collate_fn=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()
