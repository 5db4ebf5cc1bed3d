"""MovieLens-1M as time-ordered item sequences for sequential recommendation.

**Source** (verified by sha256, see ``zoo/data/checksums/ml-1m.sha256``): ``$ZOO_DATA/ml-1m/movies.dat`` (titles and
genres, ISO-8859-1, ``::``-separated) and ``ml-1m/interactions/ml-1m_ratings_ordered.tsv.gz``: all 1,000,209 (user,
movie) pairs, each user's in chronological order (``seq_pos``; same-second ties in the order of that file, since
MovieLens timestamps are not available). Read through the ``datasets`` library (its CSV builder, cached under
``$ZOO_CACHE/hf``). **GroupLens license: research use only, no redistribution** — nothing derived from these files
is ever written into the repository or a checkpoint; checkpoints only record the catalogue's size and hash.

**Protocol** (SASRec's): every interaction is an implicit positive (ratings ignored); k-core filtering repeated
until stable, dropping items with fewer than 5 interactions and then users with fewer than 5 (ML-1m: 6,040 users,
3,416 items, 999,611 interactions, exactly SASRec's item set). Items are numbered 1..N in increasing MovieLens id;
0 is padding. Leave-one-out by position: the last item of each user is the test target, the second-to-last the
validation target, the rest is training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache

from zoo.data import cache_root, verify_files

__all__ = ["MovieLens", "load_movielens", "k_core", "leave_one_out", "item_text", "TEMPLATE"]

FILES = ("movies.dat", "interactions/ml-1m_ratings_ordered.tsv.gz")
TEMPLATE = "title: {title}; year: {year}; genres: {genres}"


@dataclass
class MovieLens:
    """The filtered catalogue and sequences.

    Attributes:
        sequences: per user (in user-id order), the time-ordered item indices (1..N).
        movie_ids: MovieLens id of item i at position i - 1.
        titles: title of each item without its year ("Toy Story"); position i - 1.
        years: release year (str, "" when the title has none).
        genres: list of genres of each item.
        user_ids: MovieLens user id of each sequence.
    """

    sequences: list[list[int]]
    movie_ids: list[int]
    titles: list[str]
    years: list[str]
    genres: list[list[str]]
    user_ids: list[int] = field(default_factory=list)

    @property
    def num_items(self) -> int:
        return len(self.movie_ids)

    @property
    def catalogue_hash(self) -> str:
        """sha256 (first 16 hex digits) of the ordered MovieLens ids: a checkpoint's item numbering."""
        return hashlib.sha256(",".join(map(str, self.movie_ids)).encode()).hexdigest()[:16]

    def texts(self, template: str = TEMPLATE) -> list[str]:
        """Item text of every item (position i - 1) through ``template``."""
        return [item_text(t, y, g, template) for t, y, g in zip(self.titles, self.years, self.genres)]


def item_text(title: str, year: str, genres: list[str], template: str = TEMPLATE) -> str:
    """An item's text: ``template`` with ``{title}``, ``{year}`` and ``{genres}`` (comma-separated) filled in."""
    return template.format(title=title, year=year, genres=", ".join(genres))


def _split_title(raw: str) -> tuple[str, str]:
    raw = raw.strip()
    if raw.endswith(")") and raw[-6:-5] == "(" and raw[-5:-1].isdigit():
        return raw[:-6].strip(), raw[-5:-1]
    return raw, ""


def k_core(pairs: list[tuple[int, int]], k: int = 5) -> list[tuple[int, int]]:
    """Drop items, then users, with fewer than ``k`` interactions, until both have at least ``k``; order kept."""
    from collections import Counter

    while True:
        items = Counter(i for _, i in pairs)
        kept = [(u, i) for u, i in pairs if items[i] >= k]
        users = Counter(u for u, _ in kept)
        kept = [(u, i) for u, i in kept if users[u] >= k]
        if len(kept) == len(pairs):
            return kept
        pairs = kept


@cache
def load_movielens(k: int = 5) -> MovieLens:
    """ML-1m sequences after ``k``-core filtering (cached per process); see the module docstring.

    Raises:
        zoo.data.DataError: a file is missing or corrupted (naming it, its source and where to put it).
    """
    import datasets

    movies_path, inter_path = verify_files("ml-1m", list(FILES))
    ds = datasets.load_dataset(
        "csv",
        data_files=str(inter_path),
        delimiter="\t",
        split="train",
        cache_dir=str(cache_root() / "hf"),
    )
    import numpy as np

    cols = ds.with_format("numpy")[:]
    order = np.lexsort((cols["seq_pos"], cols["user_id"]))  # by user, then time
    pairs = list(zip(cols["user_id"][order].tolist(), cols["movie_id"][order].tolist()))
    pairs = k_core(pairs, k)
    movie_ids = sorted({m for _, m in pairs})
    index = {m: i + 1 for i, m in enumerate(movie_ids)}
    sequences: dict[int, list[int]] = {}
    for u, m in pairs:
        sequences.setdefault(u, []).append(index[m])
    meta = {}
    with open(movies_path, encoding="latin-1") as f:
        for line in f:
            mid, title, genres = line.rstrip("\n").split("::")
            meta[int(mid)] = (*_split_title(title), genres.split("|"))
    users = sorted(sequences)
    return MovieLens(
        sequences=[sequences[u] for u in users],
        movie_ids=movie_ids,
        titles=[meta[m][0] for m in movie_ids],
        years=[meta[m][1] for m in movie_ids],
        genres=[meta[m][2] for m in movie_ids],
        user_ids=users,
    )


def leave_one_out(sequence: list[int]) -> dict[str, object]:
    """Leave-one-out split of one time-ordered sequence (at least 3 items).

    Returns:
        ``{"train": s[:-2], "val": (s[:-2], s[-2]), "test": (s[:-1], s[-1])}``: training items, and the (history,
        target) pairs of validation and test.
    """
    if len(sequence) < 3:
        raise ValueError(f"expected a sequence of at least 3 items for leave-one-out, got {len(sequence)}")
    return {"train": sequence[:-2], "val": (sequence[:-2], sequence[-2]), "test": (sequence[:-1], sequence[-1])}
