"""Shared pytest configuration."""

# ---------------------------------------------------------------------------------------------------------------------
# Local Hugging Face Hub (tests/hub_server.py).
# huggingface_hub reads HF_ENDPOINT / HF_HOME / HF_HUB_DISABLE_XET into module constants at import time, so the
# environment is set here, at conftest import, before any test module (or zoo code) imports huggingface_hub.
# ---------------------------------------------------------------------------------------------------------------------
import os
import socket
import tempfile

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="zoo-hf-home-")
os.environ["HF_TOKEN"] = "zoo-test-token"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.pop("HF_HUB_OFFLINE", None)

# Triton kernels run under the interpreter without CUDA. Triton reads TRITON_INTERPRET when a kernel is decorated,
# and other test modules may import triton (through torch or transformers) before the kernel tests are collected,
# so the switch is set here, before any of them.
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """A running local Hub server at ``HF_ENDPOINT``, shared by the whole test session."""
    try:
        from tests.hub_server import HubServer
    except ImportError:  # plain `pytest`: repo root not on sys.path, but tests/ is (no tests/__init__.py)
        from hub_server import HubServer

    with HubServer(tmp_path_factory.mktemp("hub"), port=HUB_PORT) as server:
        yield server


# ---------------------------------------------------------------------------------------------------------------------
# Data and checkpoints.
# ---------------------------------------------------------------------------------------------------------------------
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("ZOO_DATA", str(REPO.parent / "shared" / "data"))
os.environ.setdefault("ZOO_CACHE", tempfile.mkdtemp(prefix="zoo-cache-"))


@pytest.fixture
def tiny_conn():
    """A small, randomly initialised stochastic CONN module (MLP AE, 3 copies, 4 steps) in eval mode."""
    from zoo.methods.conn import ConnModule

    net = {"autoencoder": "mlp", "ae_widths": [64, 16], "copies": 3, "steps": 4, "classifier_widths": [32, 16]}
    return ConnModule(net=net, seed=1).eval()


@pytest.fixture
def digits():
    """Eight test images ``[8, 1, 28, 28]`` of the restricted-MNIST test set."""
    from zoo.data.rmnist import load_rmnist

    x, _ = load_rmnist(None)
    return x[::125]
