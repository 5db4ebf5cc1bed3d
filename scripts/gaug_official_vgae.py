"""Run the official GAug-M edge-probability generator (the ``vgae/`` folder of a zhao-tong/GAug checkout) on today's
stack and write its edge-probability pickles, which ``edge_probs`` then feeds to GAug-M in place of our VGAE.

The official code is not part of the zoo: this script imports it from the checkout you name and runs its
``main.main`` with the flags of its ``vgae/run.sh`` (``--no_mask --val_frac 0.9 --epochs 200``, its default seed 7,
on the CPU), changing only what today's libraries or the zoo's rules require:

* ``dgl`` (imported by ``vgae/dataloader.py`` but unused there; DGL 0.4 no longer installs) is an empty module;
* the Planetoid ``ind.<ds>.*`` files are read from ``$ZOO_DATA/planetoid`` through the zoo's restricted unpickler
  (CSR matrices come back as scipy matrices), never a plain ``pickle.load``;
* ``utils.get_scores`` (ROC-AUC and AP of the validation pairs, the checkpoint criterion) indexes the probability
  tensor with a NumPy ``[2, k]`` array, which current torch reads as a row index; the replacement indexes by
  ``(rows, cols)`` as intended and computes the same ROC-AUC and AP (the reconstruction accuracy and F1, printed
  only, are left out).

Usage::

    python scripts/gaug_official_vgae.py --gaug-dir ~/GAug --dataset cora --draws 5 --out runs/gaug/official_vgae
    python scripts/gaug_pipeline.py official-vgae --probs runs/gaug/official_vgae --seeds 10 --dataset cora

``--draws n`` writes the first n of the official noisy draws, ``<out>/<ds>_graph_<i>_logits.pkl`` for i = 1..n
(run.sh writes 200; the official best_parameters.json uses i = 2 and 5). Each Cora file is 29 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from zoo.methods.gaug import OFFICIAL_VGAE_SEED  # noqa: E402  (the default --seed of the official vgae/main.py)


def _scipy_restricted_load(f, encoding: str = "ASCII"):
    """``pickle.load`` for the official loader: the zoo's restricted unpickler, CSR matrices as scipy matrices."""
    import scipy.sparse as sp

    from zoo.data.gaug import CSRMatrix, restricted_load

    obj = restricted_load(f, encoding=encoding)
    if isinstance(obj, CSRMatrix):
        return sp.csr_matrix((obj.data, obj.indices, obj.indptr), shape=obj.shape)
    return obj


def _get_scores(edges_pos, edges_neg, a_pred, adj_label) -> dict:
    """The official validation scores, indexing ``a_pred`` by ``(rows, cols)``."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores = np.hstack([a_pred[tuple(edges_pos.T)].numpy(), a_pred[tuple(edges_neg.T)].numpy()])
    labels = np.hstack([np.ones(len(edges_pos)), np.zeros(len(edges_neg))])
    nan = float("nan")
    return {
        "roc": roc_auc_score(labels, scores),
        "ap": average_precision_score(labels, scores),
        "f1": nan,
        "acc": nan,
    }


def run_official_vgae(
    gaug_dir: Path, dataset: str, draws: int, out: Path, seed: int = OFFICIAL_VGAE_SEED
) -> list[Path]:
    """Import ``<gaug_dir>/vgae`` with the shims above and run its ``main.main`` as ``run.sh`` does; returns the
    written ``<out>/<dataset>_graph_<i>_logits.pkl`` paths."""
    from zoo.data import data_root

    vgae_dir = Path(gaug_dir).expanduser().resolve() / "vgae"
    for name in ("main.py", "utils.py", "models.py", "dataloader.py"):
        if not (vgae_dir / name).is_file():
            raise FileNotFoundError(
                f"expected a zhao-tong/GAug checkout with vgae/{name} under {gaug_dir}: clone "
                "https://github.com/zhao-tong/GAug and pass its folder as --gaug-dir"
            )
    planetoid = data_root() / "planetoid"
    if not (planetoid / f"ind.{dataset}.graph").is_file():
        raise FileNotFoundError(f"expected the Planetoid files ind.{dataset}.* under {planetoid} (ZOO_DATA)")
    names = ("dgl", "utils", "models", "dataloader", "main")  # vgae/ imports its files as top-level modules
    saved = {name: sys.modules.pop(name, None) for name in names}
    sys.path.insert(0, str(vgae_dir))
    try:
        sys.modules["dgl"] = types.ModuleType("dgl")  # imported by vgae/dataloader.py, unused there
        sys.modules["dgl"].DGLGraph = None
        import dataloader
        import main as official
        import utils

        dataloader.pickle = types.SimpleNamespace(load=_scipy_restricted_load)
        utils.get_scores = official.get_scores = _get_scores  # main.py binds it too (`from utils import *`)
        out = Path(out).resolve()
        (out / "graphs").mkdir(parents=True, exist_ok=True)
        argv = ["main.py", "--no_mask", "--val_frac", "0.9", "--dataset", dataset, "--gen_graphs", str(draws)]
        argv += ["--epochs", "200", "--seed", str(seed)]
        with tempfile.TemporaryDirectory() as base:
            (Path(base) / "data").mkdir()
            (Path(base) / "data" / "citation_networks").symlink_to(planetoid)
            dataloader.BASE_DIR = base
            old_argv, old_cwd, sys.argv = sys.argv, os.getcwd(), argv
            try:
                os.chdir(out)  # the official code writes graphs/ under the working directory
                official.main(official.get_args())
            finally:
                sys.argv = old_argv
                os.chdir(old_cwd)
    finally:
        sys.path.remove(str(vgae_dir))
        for name, module in saved.items():
            sys.modules.pop(name, None)
            if module is not None:
                sys.modules[name] = module
    written = []
    for i in range(1, draws + 1):  # the official writes graphs/<ds>_graph_<i>_logits.pkl
        src = out / "graphs" / f"{dataset}_graph_{i}_logits.pkl"
        dst = out / src.name
        os.replace(src, dst)
        written.append(dst)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gaug-dir", required=True, type=Path, help="a checkout of zhao-tong/GAug")
    parser.add_argument("--dataset", default="cora", choices=("cora", "citeseer"))
    parser.add_argument("--draws", type=int, default=5, help="noisy draws to write (run.sh: 200)")
    parser.add_argument("--seed", type=int, default=OFFICIAL_VGAE_SEED, help="the official default seed")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gaug" / "official_vgae")
    args = parser.parse_args()
    for path in run_official_vgae(args.gaug_dir, args.dataset, args.draws, args.out, args.seed):
        print(path)


if __name__ == "__main__":
    main()
