"""Data root resolution, sha256 verification, and the restricted-MNIST sets against the original MNIST files."""

import gzip
import pickle
import shutil

import numpy as np
import pytest
import torch

from zoo.data import DataError, data_root
from zoo.data.rmnist import PER_CLASS, RMNISTDataModule, load_rmnist


def _mnist(split):
    root = data_root() / "mnist"
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return images


def test_sets_have_r_images_per_class_and_match_mnist():
    index = {}
    with gzip.open(data_root() / "rmnist" / "mnist_index_map.tsv.gz", "rt") as f:
        next(f)
        for line in f:
            name, split, idx, label = line.rstrip("\n").split("\t")
            index[name] = (split, int(idx), int(label))
    train = _mnist("train")
    x, y = load_rmnist(10)
    assert x.shape == (100, 1, 28, 28) and torch.bincount(y).tolist() == [10] * 10
    from zoo.data.rmnist import _files

    for name, image, label in zip(_files(10), x, y):
        split, idx, want = index[name]
        assert split == "train" and want == label
        assert torch.equal((image[0] * 255).round().to(torch.uint8), torch.from_numpy(train[idx].copy()))


def test_test_set_counts():
    x, y = load_rmnist(None)
    assert x.shape == (1000, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert torch.bincount(y).tolist() == [103, 107, 96, 91, 107, 87, 97, 111, 97, 104]


def test_sets_are_nested():
    small = {tuple(v) for v in (load_rmnist(5)[0].flatten(1) * 255).round().int().tolist()}
    large = {tuple(v) for v in (load_rmnist(6)[0].flatten(1) * 255).round().int().tolist()}
    assert small < large


def test_bad_per_class_raises():
    with pytest.raises(ValueError, match=r"expected per_class in \(5, 6"):
        load_rmnist(11)
    with pytest.raises(ValueError, match="expected per_class"):
        RMNISTDataModule(per_class=3)


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    src = data_root() / "rmnist"
    dst = tmp_path / "rmnist"
    shutil.copytree(src / "rmnist.aug0" / "rmnist_5aug0", dst / "rmnist.aug0" / "rmnist_5aug0")
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    return dst / "rmnist.aug0" / "rmnist_5aug0" / "train" / "tens"


def test_missing_file_is_named_with_source_and_place(data_copy):
    victim = sorted((data_copy / "3").iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match=rf"1 file\(s\) missing .*{victim.name}.*kupeev.*place them under"):
        load_rmnist(5)


def test_corrupted_file_is_named(data_copy):
    victim = sorted((data_copy / "7").iterdir())[1]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 1
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"corrupted \(sha256 mismatch\).*{victim.name}"):
        load_rmnist(5)


def test_datamodule_augmented_copies_are_seeded():
    a, b = RMNISTDataModule(per_class=5, aug_copies=2, seed=1), RMNISTDataModule(per_class=5, aug_copies=2, seed=1)
    a.setup(), b.setup()
    assert a.fit_x.shape == (150, 1, 28, 28) and torch.equal(a.fit_x, b.fit_x)
    assert torch.equal(a.fit_x[:50], a.train_x) and not torch.equal(a.fit_x[50:100], a.train_x)


def test_sampler_is_a_function_of_seed_and_epoch_and_skips_on_resume():
    dm = RMNISTDataModule(per_class=5, batch_size=10, seed=3)
    dm.setup()
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(2)
    full = [b[2].tolist() for b in loader]
    loader.load_state_dict({"epoch": 2, "batches": 2})
    rest = [b[2].tolist() for b in loader]
    assert rest == full[2:] and len(full) == 5
    assert sorted(sum(full, [])) == list(range(50))


def test_all_per_class_values_are_known():
    assert PER_CLASS == (5, 6, 7, 8, 9, 10, 20, 30, 40, 50)


def _publish_copy(args):
    tmp, target = args
    from zoo.data import publish_dir

    publish_dir(tmp, target, complete="done.json")


def test_save_cache_is_atomic_and_leaves_no_temporary_file(tmp_path):
    from zoo.data import save_cache

    path = tmp_path / "sub" / "graphs.pt"
    save_cache({"a": torch.arange(3)}, path)
    save_cache({"a": torch.arange(5)}, path)  # overwrites
    assert torch.equal(torch.load(path)["a"], torch.arange(5))
    assert [p.name for p in path.parent.iterdir()] == ["graphs.pt"]
    with pytest.raises((AttributeError, pickle.PicklingError)):
        save_cache(lambda: 0, path)  # cannot be pickled: the old file stays whole, no temporary is left
    assert torch.equal(torch.load(path)["a"], torch.arange(5))
    assert [p.name for p in path.parent.iterdir()] == ["graphs.pt"]


def test_publish_dir_keeps_a_complete_cache_and_replaces_a_broken_one(tmp_path):
    import multiprocessing as mp

    from zoo.data import publish_dir

    def folder(name, text, complete=True):
        d = tmp_path / name
        d.mkdir()
        (d / "data.txt").write_text(text)
        if complete:
            (d / "done.json").write_text("{}")
        return d

    target = tmp_path / "cache"
    publish_dir(folder("tmp-1", "first"), target, complete="done.json")
    assert (target / "data.txt").read_text() == "first" and not (tmp_path / "tmp-1").exists()
    # a second builder finishing later: the published cache (maybe being read) stays, the new copy is dropped
    publish_dir(folder("tmp-2", "second"), target, complete="done.json")
    assert (target / "data.txt").read_text() == "first" and not (tmp_path / "tmp-2").exists()
    # a leftover without its completion marker is replaced
    (target / "done.json").unlink()
    publish_dir(folder("tmp-3", "third"), target, complete="done.json")
    assert (target / "data.txt").read_text() == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    # four processes racing to publish the same cache: all return, one complete copy remains
    racers = [(str(folder(f"race-{i}", f"race {i}")), str(tmp_path / "raced")) for i in range(4)]
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_publish_copy, racers)
    assert (tmp_path / "raced" / "done.json").is_file()
    assert (tmp_path / "raced" / "data.txt").read_text() in {f"race {i}" for i in range(4)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "raced"]
