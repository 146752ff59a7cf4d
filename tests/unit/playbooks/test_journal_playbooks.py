"""playbooks/report.yml and playbooks/break_lock.yml, run by ansible-playbook as AWX's templates run them: they
read and break the stack's lock and journal on the controller and touch no host, so they run here without
the lab (the hosts of the inventory are never reached)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import Journal, Lock

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
STACK = {"name": "shop", "source": "node1", "target": "node2", "services": [
    {"name": "db", "container": "shop-db"}, {"name": "app", "container": "shop-app", "depends_on": ["db"]}]}


def play(tmp, name):
    inventory = tmp / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": {"node1": {"ansible_host": "192.0.2.1"}, "node2": {"ansible_host": "192.0.2.2"}},
        "vars": {"stacklift_stack": STACK, "stacklift_journal_dir": str(tmp / "journal")}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / name)],
                          cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300, check=False)


def locked_by(tmp, pid):
    """Run r1 of the stack left open, its lock held by PID (on this host)."""
    (tmp / "journal").mkdir(exist_ok=True)
    Journal(str(tmp / "journal" / "shop.journal")).append("begin", run="r1")
    Lock(str(tmp / "journal" / "shop.lock")).acquire("r1", pid=pid)


def test_report_fails_on_a_run_still_open_and_shows_how_a_run_ended(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    locked_by(tmp_path, dead.pid)
    res = play(tmp_path, "report.yml")
    assert res.returncode != 0 and "run r1 of shop is still open" in res.stdout, res.stdout[-3000:]
    journal = Journal(str(tmp_path / "journal" / "shop.journal"))
    journal.append("rolled_back", run="r1")
    journal.append("end", run="r1")
    res = play(tmp_path, "report.yml")
    assert res.returncode == 0, res.stdout[-3000:]
    assert '"status": "rolled_back"' in res.stdout or "status: rolled_back" in res.stdout, res.stdout[-3000:]


def test_break_lock_refuses_a_live_holder_and_breaks_a_dead_ones(tmp_path):
    holder = subprocess.Popen(["sleep", "120"])
    try:
        locked_by(tmp_path, holder.pid)
        res = play(tmp_path, "break_lock.yml")
        assert res.returncode != 0 and "run r1 is not gone: its controller (pid %d" % holder.pid in res.stdout, \
            res.stdout[-3000:]
        assert (tmp_path / "journal" / "shop.lock").exists()
    finally:
        holder.kill()
        holder.wait()
    res = play(tmp_path, "break_lock.yml")
    assert res.returncode == 0, res.stdout[-3000:]
    assert not (tmp_path / "journal" / "shop.lock").exists()
    steps = [json.loads(line)["step"] for line in (tmp_path / "journal" / "shop.journal").read_text().splitlines()]
    assert steps == ["begin", "lock_broken"]   # the run stays open, for the next run to finish
    res = play(tmp_path, "break_lock.yml")   # nothing held: nothing to break
    assert res.returncode == 0 and "lock_broken" not in res.stdout
