"""Exercise tests/hub_server.py with the real huggingface_hub client (no mocks)."""

import json
import random
import struct
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

README = "---\nlicense: mit\ntags:\n- zoo\n---\n\n# Tiny test model\n\nUploaded to the local test hub.\n"


def _safetensors_bytes(n_floats: int = 25_000) -> bytes:
    """A safetensors-shaped blob (~100 KB): u64 header length, JSON header, raw little-endian floats."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [n_floats], "data_offsets": [0, 4 * n_floats]}}).encode()
    payload = random.Random(0).randbytes(4 * n_floats)
    return struct.pack("<Q", len(header)) + header + payload


def _write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def model_files() -> dict[str, bytes]:
    """Files of the reference repo, keyed by path in repo."""
    return {
        "model.safetensors": _safetensors_bytes(),
        "config.json": json.dumps({"hidden_size": 8, "num_layers": 2}).encode(),
        "README.md": README.encode(),
        "extra/notes.txt": b"nested file\n",
    }


@pytest.fixture(scope="module")
def model_repo(hub_server, tmp_path_factory, model_files) -> str:
    """A repo created and filled with `upload_folder`; returns its id."""
    api = HfApi()
    repo_id = api.create_repo("zoo-test/tiny-model").repo_id
    folder = _write_folder(tmp_path_factory.mktemp("upload"), model_files)
    info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Add model")
    assert len(info.oid) == 40 and info.commit_url.endswith(info.oid)
    return repo_id


def test_environment_points_at_server(hub_server):
    assert constants.ENDPOINT == hub_server.url
    assert constants.HF_HUB_DISABLE_XET


def test_create_repo_exist_ok(hub_server):
    api = HfApi()
    url = api.create_repo("zoo-test/created")
    assert url.repo_id == "zoo-test/created" and url.endpoint == hub_server.url
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo("zoo-test/created")
    assert excinfo.value.response.status_code == 409
    assert api.create_repo("zoo-test/created", exist_ok=True).repo_id == "zoo-test/created"
    assert api.repo_exists("zoo-test/created") and not api.repo_exists("zoo-test/never-created")
    assert api.list_repo_files("zoo-test/created") == []


def test_model_info_siblings(model_repo, model_files):
    info = HfApi().model_info(model_repo, files_metadata=True)
    assert info.id == model_repo and len(info.sha) == 40
    assert {s.rfilename: s.size for s in info.siblings} == {k: len(v) for k, v in model_files.items()}
    assert HfApi().model_info(model_repo, revision=info.sha).sha == info.sha


def test_list_repo_files_and_tree(model_repo, model_files):
    api = HfApi()
    assert sorted(api.list_repo_files(model_repo)) == sorted(model_files)
    top = {entry.path: type(entry).__name__ for entry in api.list_repo_tree(model_repo)}
    assert top == {"model.safetensors": "RepoFile", "config.json": "RepoFile", "README.md": "RepoFile",
                   "extra": "RepoFolder"}  # fmt: skip
    assert [entry.path for entry in api.list_repo_tree(model_repo, path_in_repo="extra")] == ["extra/notes.txt"]
    assert [info.size for info in api.get_paths_info(model_repo, ["config.json"])] == [len(model_files["config.json"])]


def test_hf_hub_download_each_file(model_repo, model_files):
    for name, data in model_files.items():
        assert Path(hf_hub_download(model_repo, name)).read_bytes() == data


def test_snapshot_download(model_repo, model_files, tmp_path):
    for target in (Path(snapshot_download(model_repo)), Path(snapshot_download(model_repo, local_dir=tmp_path))):
        for name, data in model_files.items():
            assert (target / name).read_bytes() == data


def test_range_request(hub_server, model_repo, model_files):
    request = urllib.request.Request(f"{hub_server.url}/{model_repo}/resolve/main/model.safetensors")
    request.add_header("Range", "bytes=10-19")
    with urllib.request.urlopen(request) as response:
        assert response.status == 206 and response.read() == model_files["model.safetensors"][10:20]


def test_model_card_load(model_repo):
    card = ModelCard.load(model_repo)
    assert card.data.license == "mit" and card.data.tags == ["zoo"]
    assert "# Tiny test model" in card.text


def test_second_commit_updates_download(hub_server, tmp_path):
    api = HfApi()
    repo_id = api.create_repo("zoo-test/evolving").repo_id
    first = api.upload_folder(repo_id=repo_id, folder_path=_write_folder(tmp_path, {"config.json": b'{"v": 1}'}))
    assert Path(hf_hub_download(repo_id, "config.json")).read_bytes() == b'{"v": 1}'
    # Re-uploading unchanged content is a no-op: the client skips it thanks to the preupload "oid".
    assert api.upload_file(path_or_fileobj=b'{"v": 1}', path_in_repo="config.json", repo_id=repo_id).oid == first.oid
    second = api.upload_file(path_or_fileobj=b'{"v": 2}', path_in_repo="config.json", repo_id=repo_id)
    assert second.oid != first.oid
    assert Path(hf_hub_download(repo_id, "config.json")).read_bytes() == b'{"v": 2}'
    assert Path(hf_hub_download(repo_id, "config.json", revision=first.oid)).read_bytes() == b'{"v": 1}'
    api.delete_file("config.json", repo_id=repo_id)
    assert api.list_repo_files(repo_id) == []
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "config.json", force_download=True)


def test_missing_repo_raises(hub_server):
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("zoo-test/does-not-exist", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("zoo-test/does-not-exist")


def test_missing_file_or_revision_raises(model_repo):
    with pytest.raises(EntryNotFoundError) as excinfo:
        hf_hub_download(model_repo, "missing.bin")
    assert isinstance(excinfo.value, RemoteEntryNotFoundError)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(model_repo, "config.json", revision="no-such-branch")
