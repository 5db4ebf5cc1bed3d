"""MovieLens-1M protocol and ranking metrics of the litellm4rec family."""

import math

import pytest
import torch

pytest.importorskip("datasets")

from zoo.data import DataError  # noqa: E402
from zoo.data.movielens import TEMPLATE, item_text, k_core, leave_one_out, load_movielens  # noqa: E402
from zoo.litellm4rec.data import SeqRecDataModule, left_pad  # noqa: E402
from zoo.litellm4rec.metrics import mask_scores, rank_metrics, target_ranks  # noqa: E402


@pytest.fixture(scope="module")
def ml():
    return load_movielens()


def test_five_core_matches_sasrec(ml):
    # SASRec's ml-1m.txt: 6,040 users, 3,416 items, 999,611 interactions; the item set is exactly SASRec's
    assert len(ml.sequences) == 6040 and ml.num_items == 3416
    assert sum(map(len, ml.sequences)) == 999_611
    from zoo.data import data_root

    sas = data_root() / "ml-1m" / "sasrec_map" / "sas_to_original_items.txt"
    assert sorted(int(line.split()[1]) for line in sas.read_text().splitlines()) == ml.movie_ids
    assert min(map(len, ml.sequences)) >= 5
    assert all(1 <= i <= ml.num_items for s in ml.sequences[:50] for i in s)


def test_k_core_is_stable_and_order_preserving():
    pairs = [(1, 10), (1, 11), (2, 10), (2, 12), (3, 10), (3, 11)]
    kept = k_core(pairs, k=2)
    # item 12 has one interaction -> dropped; user 2 then has 1 -> dropped; item 10 keeps 2 (users 1, 3)
    assert kept == [(1, 10), (1, 11), (3, 10), (3, 11)]


def test_item_text_template(ml):
    i = ml.movie_ids.index(1)
    assert ml.titles[i] == "Toy Story" and ml.years[i] == "1995"
    assert ml.texts()[i] == "title: Toy Story; year: 1995; genres: Animation, Children's, Comedy"
    assert item_text("Les Misérables", "1995", ["Drama"], "{title} ({year})") == "Les Misérables (1995)"
    assert "{title}" in TEMPLATE


def test_leave_one_out_oracle():
    s = [5, 6, 7, 8, 9]
    split = leave_one_out(s)
    assert split["train"] == [5, 6, 7]
    assert split["val"] == ([5, 6, 7], 8) and split["test"] == ([5, 6, 7, 8], 9)
    with pytest.raises(ValueError, match="at least 3"):
        leave_one_out([1, 2])


def test_datamodule_batches(ml):
    dm = SeqRecDataModule(max_len=10, batch_size=4, eval_batch_size=3, limit_users=7)
    dm.setup()
    assert len(dm.val_rows) == len(dm.test_rows) == 7  # one validation and one test target per user
    batch = next(iter(dm.test_dataloader()))
    u = int(batch["user"][0])
    seq = ml.sequences[u]
    assert batch["target"][0] == seq[-1]
    assert batch["input"][0].tolist() == seq[-11:-1]  # the last max_len items before the target, latest last
    assert set(batch["seen"][0].tolist()) - {0} == set(seq[:-1])  # the whole history is excluded
    val = next(iter(dm.val_dataloader()))
    assert val["target"][0] == ml.sequences[int(val["user"][0])][-2]
    train = next(iter(dm.train_dataloader()))
    x, y = train["input"], train["target"]
    assert x.shape == y.shape == (4, 10)
    assert torch.equal(x[:, 1:][y[:, :-1] > 0], y[:, :-1][y[:, :-1] > 0])  # targets are the inputs shifted by one
    for row, tgt in zip(x.tolist(), y.tolist()):  # a window of consecutive training items, never val/test items
        window = [i for i in row if i] + [tgt[-1]]
        train_seq = None
        for s in ml.sequences[:7]:
            t = s[:-2]
            for start in range(len(t) - len(window) + 1):
                if t[start : start + len(window)] == window:
                    train_seq = t
        assert train_seq is not None


def test_left_pad():
    out = left_pad([[1, 2, 3], [4], []], 2)
    assert out.tolist() == [[2, 3], [0, 4], [0, 0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="ml-1m"):
        SeqRecDataModule(dataset="beauty")
    with pytest.raises(ValueError, match="window"):
        SeqRecDataModule(window="first")


def test_missing_data_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    load_movielens.cache_clear()
    try:
        with pytest.raises(DataError, match="movies.dat.*grouplens"):
            load_movielens()
    finally:
        monkeypatch.undo()
        load_movielens.cache_clear()


def test_metrics_closed_form():
    scores = torch.tensor([[0.0, 0.9, 0.8, 0.7, 0.1], [0.0, 0.1, 0.2, 0.3, 0.4]])
    target = torch.tensor([3, 1])
    ranks = target_ranks(mask_scores(scores), target)
    assert ranks.tolist() == [3, 4]
    m = rank_metrics(ranks, ks=(2, 3, 4))
    assert m["recall@2"].tolist() == [0, 0] and m["recall@3"].tolist() == [1, 0] and m["recall@4"].tolist() == [1, 1]
    assert m["ndcg@3"][0].item() == pytest.approx(1 / math.log2(4))
    assert m["ndcg@4"][1].item() == pytest.approx(1 / math.log2(5))
    # seen items are excluded: masking item 1 lifts item 3 to rank 2
    assert target_ranks(mask_scores(scores, torch.tensor([[1], [0]])), target).tolist() == [2, 4]


def test_metrics_match_torchmetrics():
    from torchmetrics.retrieval import RetrievalNormalizedDCG, RetrievalRecall

    g = torch.Generator().manual_seed(0)
    B, N = 64, 50
    scores = torch.randn(B, N + 1, generator=g)
    target = torch.randint(1, N + 1, (B,), generator=g)
    ranks = target_ranks(mask_scores(scores), target)
    ours = rank_metrics(ranks, ks=(5, 10))
    preds = scores[:, 1:].reshape(-1)
    rel = torch.zeros(B, N, dtype=torch.long)
    rel[torch.arange(B), target - 1] = 1
    indexes = torch.arange(B)[:, None].expand(B, N).reshape(-1)
    for k in (5, 10):
        recall = RetrievalRecall(top_k=k)(preds, rel.reshape(-1), indexes=indexes)
        ndcg = RetrievalNormalizedDCG(top_k=k)(preds, rel.reshape(-1), indexes=indexes)
        assert ours[f"recall@{k}"].mean().item() == pytest.approx(recall.item(), abs=1e-6)
        assert ours[f"ndcg@{k}"].mean().item() == pytest.approx(ndcg.item(), abs=1e-6)


def test_random_scores_recall_is_k_over_n():
    g = torch.Generator().manual_seed(1)
    B, N, K = 20000, 100, 10
    ranks = target_ranks(mask_scores(torch.rand(B, N + 1, generator=g)), torch.randint(1, N + 1, (B,), generator=g))
    assert rank_metrics(ranks, ks=(K,))[f"recall@{K}"].mean().item() == pytest.approx(K / N, abs=0.01)
