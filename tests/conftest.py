"""Shared fixtures: the lab's hosts, reached the way Ansible reaches them.

The lab is mandatory for integration tests: when it is not up they fail and say
how to start it (`make lab`); they never skip.
"""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LAB_DIR = Path(os.environ.get("STACKLIFT_LAB_DIR", REPO / ".lab"))
INVENTORY = LAB_DIR / "inventory.yml"
BIN = Path(sys.executable).parent

sys.path.insert(0, str(REPO / "lab"))
sys.path.insert(0, str(REPO / "tests"))


class Host:
    """One lab host: run shell commands on it over SSH, as Ansible does."""

    def __init__(self, name, address, key, ssh_args):
        self.name, self.address, self.key, self.ssh_args = name, address, key, ssh_args

    def ssh_cmd(self):
        return ["ssh", "-i", self.key, "-o", "BatchMode=yes"] + shlex.split(self.ssh_args) + ["root@" + self.address]

    def run(self, cmd, check=True, timeout=300):
        res = subprocess.run(self.ssh_cmd() + [cmd], capture_output=True, text=True, timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise AssertionError("%s: `%s` failed (%d)\nstdout: %s\nstderr: %s"
                                 % (self.name, cmd, res.returncode, res.stdout, res.stderr))
        return res

    def out(self, cmd, **kw):
        return self.run(cmd, **kw).stdout.strip()

    def podman_json(self, cmd):
        return json.loads(self.out("podman " + cmd))

    def __repr__(self):
        return "Host(%s)" % self.name


def load_lab():
    if not INVENTORY.exists():
        pytest.fail("the lab is not up (no %s): run `make lab` (make test does it)" % INVENTORY, pytrace=False)
    inv = yaml.safe_load(INVENTORY.read_text())
    vars_ = inv["all"]["vars"]
    hosts = {}
    for name, hv in inv["all"]["children"]["lab"]["hosts"].items():
        hosts[name] = Host(name, hv["ansible_host"], vars_["ansible_ssh_private_key_file"],
                           vars_["ansible_ssh_common_args"])
    return hosts


@pytest.fixture(scope="session")
def lab():
    hosts = load_lab()
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
