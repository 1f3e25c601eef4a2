"""Shared test fixtures: everything real is read from ../shared beside the checkout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("EFFICIENTPOSE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DATA = SHARED / "data"
WEIGHTS_DIR = SHARED / "weights" / "efficientpose"

# Child processes are forked, not vforked. Late in a full run pytest itself died with SIGSEGV right after a vfork
# (gdb: "Detaching after vfork from child process", then SIGSEGV in the parent's close()), five times, each time at
# a test that starts a child; with fork the child never runs on the parent's stack.
subprocess._USE_VFORK = False

# The product's weight resolution reads this folder (laid out like the authors' models/ folder).
os.environ.setdefault("EFFICIENTPOSE_WEIGHTS_DIR", str(WEIGHTS_DIR))
# No test reaches the network: the last step of the weights resolution (a download) goes to a closed local port,
# so a test that would fall through to it fails at once with a WeightsError (tests of the download set their own
# local server).
os.environ["EFFICIENTPOSE_WEIGHTS_URL"] = "http://127.0.0.1:9/no-network-in-tests"

#: Fixtures that read ../shared: a test using any of them is marked ``data`` (``-m "not data"`` runs without it).
DATA_FIXTURES = frozenset({"shared", "data_dir", "weights_dir"})


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def data_dir(shared: Path) -> Path:
    return shared / "data"


@pytest.fixture(scope="session")
def weights_dir(shared: Path) -> Path:
    return shared / "weights" / "efficientpose"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep converted weights of the test run out of the user's ~/.cache."""
    os.environ["EFFICIENTPOSE_HOME"] = str(tmp_path_factory.mktemp("efficientpose-home"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that reads ../shared (through a fixture) ``data``; run tests marked ``fresh_process``
    first, before the suite has loaded ONNX Runtime/OpenVINO thread pools into this process: the 2-process
    torchrun test crashed pytest itself (SIGSEGV) when run late in the suite."""
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)
    items.sort(key=lambda item: item.get_closest_marker("fresh_process") is None)
