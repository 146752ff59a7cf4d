"""The lab's hosts as Python sees them: run commands over SSH the way Ansible reaches them.

Used by the tests and the benchmarks.
"""

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
INVENTORY = REPO / ".lab" / "inventory.yml"
BIN = Path(sys.executable).parent


class LabDown(Exception):
    pass


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

    def run_inside(self, cmd):
        """Run a shell command in the host's namespaces from the controller, without SSH
        (for a test that has cut the host off the controller's network)."""
        import lab as labtool  # lab/lab.py
        pid = labtool.host_pid(self.name)
        return subprocess.run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--", "sh", "-c", cmd],
                              capture_output=True, text=True, check=True, timeout=60)

    def out(self, cmd, **kw):
        return self.run(cmd, **kw).stdout.strip()

    def podman_json(self, cmd):
        return json.loads(self.out("podman " + cmd))

    def __repr__(self):
        return "Host(%s)" % self.name


def load_lab(inventory=INVENTORY):
    """{name: Host} from the lab's inventory."""
    if not Path(inventory).exists():
        raise LabDown("the lab is not up (no %s): run `make lab` (make test does it)" % inventory)
    inv = yaml.safe_load(Path(inventory).read_text())
    vars_ = inv["all"]["vars"]
    hosts = {}
    for name, hv in inv["all"]["children"]["lab"]["hosts"].items():
        hosts[name] = Host(name, hv["ansible_host"], vars_["ansible_ssh_private_key_file"],
                           vars_["ansible_ssh_common_args"])
    return hosts


def ansible_env(**extra):
    env = dict(os.environ, **extra)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env["PATH"] = "%s:%s" % (BIN, env.get("PATH", ""))
    return env


def run_module(host, module, args, check=False, diff=False, background=False, env=None):
    """(result, failed) of stacklift.migrate.MODULE on HOST; a Popen when background."""
    out = tempfile.NamedTemporaryFile(prefix="stacklift-result-", suffix=".json", delete=False)
    out.close()
    play = [{
        "hosts": host, "gather_facts": False,
        "tasks": [
            {"name": "run", "stacklift.migrate." + module: args, "register": "result", "ignore_errors": True,
             "check_mode": check, "diff": diff},
            {"name": "save", "ansible.builtin.copy": {"content": "{{ result | to_json }}", "dest": out.name},
             "delegate_to": "localhost", "vars": {"ansible_python_interpreter": sys.executable}},
        ],
    }]
    pb = tempfile.NamedTemporaryFile("w", prefix="stacklift-play-", suffix=".yml", delete=False)
    yaml.safe_dump(play, pb)
    pb.close()
    cmd = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), pb.name]
    if background:
        return subprocess.Popen(cmd, env=ansible_env(**(env or {})), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    proc = subprocess.run(cmd, env=ansible_env(**(env or {})), capture_output=True, text=True, timeout=900, check=False)
    os.unlink(pb.name)
    text = Path(out.name).read_text()
    os.unlink(out.name)
    if not text.strip():
        raise AssertionError("ansible-playbook gave no result (%d):\n%s\n%s"
                             % (proc.returncode, proc.stdout, proc.stderr))
    result = json.loads(text)
    return result, bool(result.get("failed"))
