"""Data root resolution and file verification shared by every data module.

Data sets live under ``$ZOO_DATA/<dataset>/`` in the format they are published in (default ``~/.cache/zoo``).
Every file a data module reads is checked against the sha256 list shipped in ``zoo/data/checksums/``; what a
module derives from the files is cached once under ``$ZOO_CACHE`` (default ``~/.cache/zoo/derived``), keyed by
the sources' hashes, so a read-only data directory works.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from functools import cache
from pathlib import Path

__all__ = [
    "DataError", "data_root", "cache_root", "save_cache", "publish_dir", "checksums", "sha256_file", "verify_files",
    "SOURCES",
]  # fmt: skip

CHECKSUM_DIR = Path(__file__).parent / "checksums"

# where each data set comes from, shown when a file is missing or corrupted
SOURCES = {
    "rmnist": "the `data/` folder of https://github.com/kupeev/kupeev-conscious-neural-networks-practical "
    "(commit bbded32b), keeping its layout: rmnist.aug0/rmnist_<R>aug0/train/tens/<digit>/nim=<i>.pt and "
    "test_data/tens/<digit>/nimabs=<j>.nb=<j>.nim=0.pt",
    "mnist": "http://yann.lecun.com/exdb/mnist/ (or any mirror): the four *-idx?-ubyte.gz files",
    "gaug": "the `data/graphs/` folder of https://github.com/zhao-tong/GAug (commit 4091bbde): "
    "<ds>_adj.pkl, <ds>_features.pkl, <ds>_labels.pkl, <ds>_tvt_nids.pkl for ds in cora, citeseer",
    "textgcn": "the `data/` folder of https://github.com/yao8839836/text_gcn (commit 96222365), gzipped: "
    "mr/text_{train,test}.txt.gz and mr/label_{train,test}.txt.gz, R8/{train,test}.txt.gz, meta/<ds>.txt",
    "reuters21578": "Reuters-21578 Distribution 1.0 (https://kdd.ics.uci.edu/databases/reuters21578/) plus the "
    "derived R8/R52 document tables described in the data MANIFEST (reuters21578/derived/r8_r52_docs.jsonl.gz, "
    "reuters21578/splits/R8_docs.tsv.gz, reuters21578/splits/R52_docs.tsv.gz)",
    "ml-1m": "MovieLens-1M from GroupLens (https://grouplens.org/datasets/movielens/1m/; research use only, never "
    "redistribute it): movies.dat, users.dat, README, plus interactions/ml-1m_ratings_ordered.tsv.gz, the per-user "
    "time-ordered (user_id, movie_id, rating, seq_pos) table described in the data MANIFEST",
    "planetoid": "the `gcn/data/` folder of https://github.com/tkipf/gcn (commit 39a4089f): the ind.<ds>.{x,y,tx,ty,"
    "allx,ally,graph,test.index} files for ds in cora, citeseer",
}


class DataError(FileNotFoundError):
    """A data file is missing or does not have its published sha256."""


def data_root() -> Path:
    """The data root: ``$ZOO_DATA`` if set, else ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_DATA") or Path.home() / ".cache" / "zoo").expanduser()


def cache_root() -> Path:
    """Where derived data is cached: ``$ZOO_CACHE`` if set, else ``~/.cache/zoo/derived``."""
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "zoo" / "derived").expanduser()


def save_cache(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically: written to a file of this process's own, then renamed over ``path``.
    Concurrent writers (two trainings building the same cache) never interleave, and a reader sees either no file
    or a whole one."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def publish_dir(tmp: str | os.PathLike, target: str | os.PathLike, complete: str) -> None:
    """Move the finished cache folder ``tmp`` to ``target`` in one rename. If another process has already published a
    complete ``target`` (one holding the file ``complete``), it is kept, never removed under its readers, and ``tmp``
    is discarded; an incomplete leftover ``target`` (from a crash) is moved aside and removed first."""
    import shutil

    tmp, target = Path(tmp), Path(target)
    if target.exists() and not (target / complete).is_file():
        aside = target.with_name(f"{target.name}.stale-{os.getpid()}")
        try:
            target.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        except OSError:  # another process moved it first
            pass
    try:
        tmp.rename(target)
    except OSError:  # another process published first (a non-empty target cannot be renamed onto)
        if not (target / complete).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


@cache
def checksums(dataset: str) -> dict[str, str]:
    """The published sha256 of every file of ``dataset``, keyed by path relative to ``$ZOO_DATA/<dataset>``."""
    plain, packed = CHECKSUM_DIR / f"{dataset}.sha256", CHECKSUM_DIR / f"{dataset}.sha256.gz"
    if packed.exists():
        text = gzip.decompress(packed.read_bytes()).decode()
    elif plain.exists():
        text = plain.read_text()
    else:
        raise KeyError(f"no checksum list for data set {dataset!r} in {CHECKSUM_DIR}")
    out = {}
    for line in text.splitlines():
        digest, name = line.split(maxsplit=1)
        out[name.strip()] = digest
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_files(dataset: str, names: list[str]) -> list[Path]:
    """Check that every file in ``names`` exists under ``$ZOO_DATA/<dataset>`` with its published sha256.

    Args:
        dataset: data set folder name, with a checksum list in ``zoo/data/checksums``.
        names: paths relative to the data set folder.

    Returns:
        The absolute paths, in the order given.

    Raises:
        DataError: naming every missing or corrupted file, where the data comes from and where to put it.
    """
    root = data_root() / dataset
    known = checksums(dataset)
    missing, corrupted, paths = [], [], []
    for name in names:
        path = root / name
        paths.append(path)
        if name not in known:
            raise KeyError(f"{name!r} is not a file of data set {dataset!r}")
        if not path.is_file():
            missing.append(name)
        elif sha256_file(path) != known[name]:
            corrupted.append(name)
    if missing or corrupted:
        lines = []
        for label, bad in (("missing", missing), ("corrupted (sha256 mismatch)", corrupted)):
            if bad:
                shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
                lines.append(f"{len(bad)} file(s) {label} under {root}: {shown}")
        raise DataError(
            "; ".join(lines) + f". Get them from {SOURCES.get(dataset, 'the source named in its MANIFEST')} and "
            f"place them under {root} (set ZOO_DATA to change the data root, now {data_root()})."
        )
    return paths
