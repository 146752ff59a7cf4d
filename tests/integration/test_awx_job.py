"""The playbooks run the way AWX runs them: ansible-runner with a private data directory laid out as
AWX lays it out (the project checked out, its collections installed from collections/requirements.yml,
the inventory, the survey's answers as extra vars), against the lab, its hosts reached on another SSH port. The job's events show each phase
start and end, and the outcome comes back to AWX through set_stats."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import ansible_runner
import jinja2
import yaml

from awxplay import made, template
from labhosts import BIN, INVENTORY, REPO
from shoplab import CONTAINERS, SHOP_INVENTORY, demo_passwords, running, shopper, verify


def survey_answers(tmpl, **answers):
    """What AWX passes as extra vars: each survey question's default, unless answered."""
    out = {}
    for q in tmpl["survey_spec"]["spec"]:
        out[q["variable"]] = answers.pop(q["variable"], q["default"])
    assert not answers, "not questions of %s: %s" % (tmpl["name"], answers)
    return out


def injected(credential_type, **inputs):
    """The extra vars AWX injects for a credential of CREDENTIAL_TYPE with INPUTS (its injectors,
    rendered by Jinja2 as AWX renders them)."""
    ct = made("credential_type")[credential_type]
    assert set(ct["inputs"]["required"]) <= set(inputs)
    return {k: jinja2.Template(v).render(**inputs) for k, v in ct["injectors"]["extra_vars"].items()}


def checkout_project(dest):
    """The project as AWX checks it out (a git repository), with the collection installed from its
    collections/requirements.yml into requirements_collections/, as AWX's project update does."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=str(REPO), capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(str(src), str(dest / f))
    git = ["git", "-c", "user.name=awx", "-c", "user.email=awx@localhost"]
    # the release's tag, which collections/requirements.yml pins (a project synced to it runs its roles)
    tag = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "project"], ["tag", tag]):
        subprocess.run(git + cmd, cwd=str(dest), check=True, capture_output=True)
    requirements = yaml.safe_load((dest / "collections" / "requirements.yml").read_text())
    for c in requirements["collections"]:
        if c["name"].endswith("stacklift.migrate.git"):
            c["name"] = "file://%s" % dest  # the same repository, here rather than on its forge
    local = dest.parent / "requirements.yml"
    local.write_text(yaml.safe_dump(requirements))
    installed = dest.parent / "requirements_collections"
    # As AWX's project update runs it: in the project, with its ansible.cfg (not the one make exports).
    env = dict(os.environ, ANSIBLE_CONFIG=str(dest / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(installed))
    res = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "-r", str(local), "-p", str(installed)],
                         cwd=str(dest), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (installed / "ansible_collections" / "stacklift" / "migrate" / "MANIFEST.json").exists()
    return installed


def private_data_dir(tmp, extravars, port=None, inventory_vars=None):
    pdd = tmp / "awx"
    (pdd / "project").mkdir(parents=True)
    collections = checkout_project(pdd / "project")
    inv = pdd / "inventory"
    inv.mkdir()
    # The job's inventory: the hosts, and the stack described in its group_vars (vaulted passwords too).
    shutil.copy(str(INVENTORY), str(inv / "hosts.yml"))
    shutil.copy(str(SHOP_INVENTORY), str(inv / "shop.yml"))
    shutil.copy(str(SHOP_INVENTORY.parent / "traffic.yml"), str(inv / "traffic.yml"))  # the stack's traffic switch
    shutil.copytree(str(SHOP_INVENTORY.parent / "group_vars"), str(inv / "group_vars"))
    if port or inventory_vars:
        (inv / "ports.yml").write_text(yaml.safe_dump({"all": {"vars": dict(
            inventory_vars or {}, **({"ansible_port": port} if port else {}))}}))
    (pdd / "env").mkdir()
    (pdd / "env" / "extravars").write_text(json.dumps(extravars))
    (pdd / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        # The project's own ansible.cfg, as in an AWX job (not the checkout's, which make exports).
        "ANSIBLE_CONFIG": str(pdd / "project" / "ansible.cfg"),
        "PATH": "%s:/usr/sbin:/usr/bin:/sbin:/bin" % BIN,
        "ANSIBLE_FORCE_COLOR": "0",
    }))
    (pdd / "env" / "settings").write_text(json.dumps({"suppress_ansible_output": True}))
    return pdd


def test_the_migrate_template_runs_as_awx_runs_it_with_progress_events_and_its_outcome_in_the_artifacts(
        node1, node2, shop, tmp_path):
    tmpl = template("stacklift: migrate a stack")
    answers = survey_answers(tmpl, stacklift_target_host="node2", stacklift_probe_timeout=90)
    # Reports and the journal kept outside the job's throw-away directory, as the AWX guide says.
    answers.update(stacklift_report_dir=str(tmp_path / "reports"), stacklift_journal_dir=str(tmp_path / "journal"),
                   stacklift_progress_after=0)  # every window's progress shown, however short
    # Real hosts' SSH is often not on port 22: every host is reached on 2222 (ansible_port), and node1 may
    # not reach node2's port 22 at all, so the archives and images too go to the port the inventory gives.
    # The host-to-host key from the job's credential of the project's custom type, as AWX injects it:
    # no key file on the sources serves (their stacklift_ssh_key_on_host names none).
    answers.update(injected("stacklift host-to-host key", ssh_key_data=Path(node1.key).read_text()))
    pdd = private_data_dir(tmp_path, answers, port=2222,
                           inventory_vars={"stacklift_ssh_key_on_host": "/nonexistent/id_ed25519"})
    node2.run("nft -f - <<'EOF'\ntable inet stacklift_test {\n chain in { type filter hook input priority -300; "
              "ip saddr %s tcp dport 22 drop; }\n}\nEOF" % node1.address)
    assert node1.run("timeout 3 bash -c '</dev/tcp/%s/22'" % node2.address, check=False).returncode != 0
    assert node1.run("timeout 3 bash -c '</dev/tcp/%s/2222'" % node2.address, check=False).returncode == 0
    started = time.time()
    r = ansible_runner.run(private_data_dir=str(pdd), playbook=tmpl["playbook"], ident="job1", quiet=True)
    events = list(r.events)
    out = (pdd / "artifacts" / "job1" / "stdout").read_text()
    assert r.status == "successful" and r.rc == 0, out[-6000:]
    assert time.time() - started < 600

    # The stack moved, with its shoppers' state, as on the command line.
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail

    # Progress, as AWX's job output shows it: every task that started ended, in this order of phases.
    starts = [e for e in events if e["event"] == "playbook_on_task_start"
              and e["event_data"].get("task_action") not in ("meta", "ansible.builtin.meta")]  # no result of their own
    ended = {e["event_data"].get("task_uuid") for e in events
             if e["event"] in ("runner_on_ok", "runner_on_skipped", "runner_on_failed", "runner_on_unreachable")}
    names = [e["event_data"]["task"] for e in starts]
    assert all(e["event_data"]["task_uuid"] in ended for e in starts), [
        e["event_data"]["task"] for e in starts if e["event_data"]["task_uuid"] not in ended]
    phases = ["Plan the stack", "Take the lock of stack", "Check the source hosts", "Check the target hosts",
              "Show the plan, before anything is frozen", "Give the targets the stack's images",
              "Restore tier by tier", "Quiesce, fence, checkpoint and send",
              "Wait for the cut on the sources", "Route the clients' traffic",  # the demo switches at the cut
              "Wait for the targets' calls",
              "Record the commit", "Tell the targets' calls, waiting fenced and ready, that the stack is committed",
              "Probe readiness on the target",
              "Write the migration report", "Show when each service", "Hand the outcome",
              "Remove the checkpointed containers", "Close the run"]
    at = -1
    for phase in phases:
        after = [i for i, n in enumerate(names) if i > at and n.startswith(phase)]
        assert after, "no task %r after %r in the job's events: %s" % (phase, names[at] if at >= 0 else None, names)
        at = after[0]
    # While the window runs, its progress: where each service is on the target, as it goes (the sources are
    # done by the time their wait comes, in a window this short).
    progress = [e["stdout"] for e in events if e.get("stdout", "").startswith("shop on node2 (target), ")]
    assert progress and all(all("%s " % s in line for s in ("db", "cache", "app")) for line in progress), progress
    # Each service's phases, each with its start and end: an item event per service.
    items = {e["event_data"]["res"]["item"]["key"]: e["event_data"]["res"]["msg"] for e in events
             if e["event"] == "runner_item_on_ok" and e["event_data"]["task"].startswith("Show when each service")}
    assert set(items) == {"db", "cache", "app"}, items
    for msg in items.values():
        assert all(phase in msg for phase in ("fence", "checkpoint", "transfer", "restore", "ready")), msg

    # What AWX keeps: the outcome, downtime and report through set_stats, in the job's artifacts.
    stats = next(e for e in events if e["event"] == "playbook_on_stats")["event_data"]
    migration = stats["artifact_data"]["stacklift_migrations"]["shop"]
    assert migration["outcome"] == "migrated" and 0 < migration["downtime_s"] < 60
    assert migration["source"] == "node1" and migration["target"] == "node2"
    assert migration["report"].startswith(str(tmp_path / "reports")) and json.loads(
        open(migration["report"]).read())["outcome"] == "migrated"
    # and a copy on the host the stack now serves from, which outlives the job's container
    host, path = migration["report_on_host"].split(":", 1)
    assert host == "node2" and path.startswith("/var/lib/stacklift/reports/shop-"), migration
    assert json.loads(node2.out("cat %s" % path))["outcome"] == "migrated"
    # The vaulted passwords and the credential's key never reach the job's output.
    for password in demo_passwords() + [Path(node1.key).read_text().strip().splitlines()[1]]:
        assert password not in out

    # The migration workflow's next node on success: the verify template, in the same project and inventory,
    # with the workflow's survey answers (AWX gives them to every node): every service probed on its target.
    check = template("stacklift: verify a stack")
    (pdd / "env" / "extravars").write_text(json.dumps(dict(answers, **survey_answers(check, stacklift_target_host="node2"))))
    r = ansible_runner.run(private_data_dir=str(pdd), playbook=check["playbook"], ident="job1-verify", quiet=True)
    out = (pdd / "artifacts" / "job1-verify" / "stdout").read_text()
    assert r.status == "successful", out[-4000:]
    probed = [e["event_data"]["res"]["item"]["name"] for e in r.events if e["event"] == "runner_item_on_ok"
              and e["event_data"]["task"].startswith("Probe readiness on the target")]
    assert sorted(probed) == ["app", "cache", "db"], probed
    stats = next(e for e in r.events if e["event"] == "playbook_on_stats")["event_data"]
    assert stats["artifact_data"]["stacklift_verified"] == {"shop": "node2"}


def test_a_survey_naming_an_unknown_stack_fails_before_anything_is_touched(node1, node2, shop, tmp_path):
    tmpl = template("stacklift: preflight a stack")
    pdd = private_data_dir(tmp_path, survey_answers(tmpl, stacklift_stack_name="nosuchstack"))
    r = ansible_runner.run(private_data_dir=str(pdd), playbook=tmpl["playbook"], ident="job2", quiet=True)
    out = (pdd / "artifacts" / "job2" / "stdout").read_text()
    assert r.status == "failed" and "no stack named nosuchstack" in out, out[-3000:]
    assert running(node1) == set(CONTAINERS) and shopper("verify", shop["state"]).returncode == 0
