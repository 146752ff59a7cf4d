"""Fixtures of the shop tests: the shop deployed on node1, and background processes stopped at the end."""

import pytest

from labhosts import REPO
from shoplab import playbook, remove_shop, shopper


@pytest.fixture
def background():
    """Processes a test starts in the background; whatever still runs at its end is stopped."""
    procs = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture
def engine():
    """The container engine of the shop: Podman, unless a test is parametrized with engine."""
    return "podman"


@pytest.fixture
def shop(node1, node2, tmp_path, engine):
    """The shop deployed on node1 with five shoppers' state; removed from both hosts afterwards."""
    remove_shop(node1, node2)
    res = playbook(REPO / "examples" / "shop" / "deploy.yml", engine=engine)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    state = tmp_path / "shoppers.json"
    res = shopper("drive", str(state))
    assert res.returncode == 0, res.stdout + res.stderr
    yield {"state": str(state), "reports": tmp_path / "reports", "tmp": tmp_path, "engine": engine}
    remove_shop(node1, node2)
