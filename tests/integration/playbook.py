"""Run one stacklift module on a lab host through ansible-playbook, and get its result back."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / ".lab" / "inventory.yml"
BIN = Path(sys.executable).parent


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
