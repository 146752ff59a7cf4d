"""As on real hosts that refuse root logins: Ansible logs in as a user with sudo (become), the source
sends host to host as that user (its commands on the target through sudo), reaching the target only
through a jump host, with the host-to-host key given as an AWX credential gives it (a variable, no file
on the source)."""

from pathlib import Path

import yaml

from labhosts import REPO
from shoplab import CONTAINERS, LiveClient, playbook, report_of, running, verify


def test_a_stack_moves_with_become_through_a_jump_host_with_the_key_given_as_a_credential(
        node1, node2, node3, shop, tmp_path, background):
    key = Path(node1.key).read_text()  # the lab's key, which the stacklift users accept
    inventory = tmp_path / "real-hosts.yml"
    inventory.write_text(yaml.safe_dump({"lab": {
        "vars": {"ansible_user": "stacklift", "ansible_become": True, "stacklift_ssh_user_on_host": "stacklift"},
        "hosts": {"node2": {"stacklift_ssh_jump_host": "node3"}}}}))
    credential = tmp_path / "credential.yml"
    credential.write_text(yaml.safe_dump({"stacklift_ssh_private_key": key,
                                          # no key file on the source: only the credential can work
                                          "stacklift_ssh_key_on_host": "/nonexistent/id_ed25519"}))
    # node1 cannot reach node2's SSH at all: only through node3.
    node2.run("nft -f - <<'EOF'\ntable inet stacklift_test {\n chain in { type filter hook input priority -300; "
              "ip saddr %s tcp dport { 22, 2222 } drop; }\n}\nEOF" % node1.address)
    assert node1.run("timeout 3 bash -c '</dev/tcp/%s/22'" % node2.address, check=False).returncode != 0
    assert node1.run("timeout 3 bash -c '</dev/tcp/%s/22'" % node3.address, check=False).returncode == 0

    client = LiveClient(tmp_path, background)
    res = playbook(REPO / "playbooks" / "migrate_stack.yml", "-i", str(inventory), "-e", "@%s" % credential,
                   "-e", "stacklift_target_host=node2", "-vvv", report_dir=shop["reports"])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    client.result(out)
    assert running(node2) == set(CONTAINERS) and running(node1) == set()
    ok, detail = verify(shop["state"])
    assert ok, detail
    report = report_of(shop["reports"])
    assert report["outcome"] == "migrated"

    # Ansible logged in as stacklift only (the hosts' root was reached through sudo).
    assert "ESTABLISH SSH CONNECTION FOR USER: stacklift" in out and "SSH CONNECTION FOR USER: root" not in out
    # The key was never logged (not even at -vvv), and no copy of it stayed on any host (the lab's
    # hosts hold the same key in root's .ssh, left out of the search).
    secret = key.strip().splitlines()[1]
    assert secret not in out
    for host in (node1, node2, node3):
        left = host.run("grep -rlF --exclude-dir=.ssh -- %s /root /home/stacklift /var/lib/stacklift /tmp 2>/dev/null || true"
                        % secret[:40], check=False).stdout
        assert left.strip() == "", (host.name, left)
