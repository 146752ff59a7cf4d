"""Shared fixtures: the lab's hosts, reached the way Ansible reaches them.

The lab is mandatory for integration tests: when it is not up they fail and say
how to start it (`make lab`); they never skip.
"""

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAB_DIR = Path(os.environ.get("STACKLIFT_LAB_DIR", REPO / ".lab"))
INVENTORY = LAB_DIR / "inventory.yml"
BIN = Path(sys.executable).parent

sys.path.insert(0, str(REPO / "lab"))
sys.path.insert(0, str(REPO / "tests"))

from labhosts import LabDown, load_lab  # noqa: E402  (lab/labhosts.py)


@pytest.fixture(scope="session")
def lab():
    try:
        hosts = load_lab(INVENTORY)
    except LabDown as e:
        pytest.fail(str(e), pytrace=False)
    for h in hosts.values():
        res = h.run("true", check=False, timeout=30)
        if res.returncode != 0:
            pytest.fail("lab host %s does not answer over SSH: %s (run `make lab`)" % (h.name, res.stderr),
                        pytrace=False)
    return hosts


@pytest.fixture(scope="session")
def node1(lab):
    return lab["node1"]


@pytest.fixture(scope="session")
def node2(lab):
    return lab["node2"]


@pytest.fixture(scope="session")
def node3(lab):
    """The third host the fleet tests drain to; `make test` starts three."""
    if "node3" not in lab:
        pytest.fail("the fleet tests need a third lab host: run `make lab LAB_NODES=3` (make test does)",
                    pytrace=False)
    return lab["node3"]


@pytest.fixture(scope="session")
def lab_images():
    return json.loads((LAB_DIR / "images.json").read_text())


@pytest.fixture(scope="session")
def ansible_env():
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["PATH"] = "%s:%s" % (BIN, env.get("PATH", ""))
    return env


@pytest.fixture(scope="session")
def record_timing():
    """Keep measured figures in .lab/reports/timings.json, for closing notes and benchmarks."""
    out = LAB_DIR / "reports" / "timings.json"

    def record(name, values):
        out.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(out.read_text()) if out.exists() else {}
        data[name] = values
        out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return record
