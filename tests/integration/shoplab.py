"""The demo shop on the lab, as the integration tests use it: deploy, drive, verify, migrate."""

import glob
import json
import subprocess
import sys
import time

import yaml

from labhosts import BIN, INVENTORY, REPO, ansible_env

SHOP_INVENTORY = REPO / "examples" / "shop" / "inventory.yml"
SHOPPER = REPO / "examples" / "shop" / "shopper.py"
CLIENT_NETNS = "stacklift-client"
CONTAINERS = ("shop-app", "shop-cache", "shop-db")
ARCHIVE_DIR = "/var/lib/stacklift/checkpoints"


def playbook(path, *extra, env=None, background=False, report_dir=None, new_session=False, engine=None):
    cmd = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "-i", str(SHOP_INVENTORY), str(path)]
    if engine:
        cmd += ["-e", "stacklift_engine=%s" % engine]
    if report_dir:
        # Each test its own journal, next to its reports.
        cmd += ["-e", "stacklift_report_dir=%s" % report_dir,
                "-e", "stacklift_journal_dir=%s" % (report_dir.parent / "journal")]
    cmd += list(extra)
    e = ansible_env(**(env or {}))
    if background:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=new_session)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=900, check=False)


class DemoVarsLoader(yaml.SafeLoader):
    """Reads the demo's group_vars, leaving its vaulted values as they are (Ansible decrypts them)."""


DemoVarsLoader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


def demo_stack():
    """The demo's stack description, as examples/shop/group_vars/all/stack.yml gives it."""
    text = (SHOP_INVENTORY.parent / "group_vars" / "all" / "stack.yml").read_text()
    return yaml.load(text, Loader=DemoVarsLoader)["stacklift_stack"]


def demo_secrets(*names):
    """The demo's vaulted variables NAMES, as Ansible reads them."""
    res = subprocess.run([str(BIN / "ansible"), "-i", str(SHOP_INVENTORY), "localhost", "-m", "debug", "-a",
                          "msg={{ [%s] | to_json }}" % ", ".join(names)],
                         env=ansible_env(), capture_output=True, text=True, timeout=120, check=True)
    values = json.loads(json.loads(res.stdout.split("=>", 1)[1])["msg"])
    assert all(len(v) >= 16 for v in values), "the demo's secrets are long random strings"
    return values


def demo_passwords():
    return demo_secrets("shop_db_password", "shop_cache_password")


def shopper(*args, background=False):
    cmd = ["ip", "netns", "exec", CLIENT_NETNS, sys.executable, str(SHOPPER)] + list(args)
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def remove_shop(*hosts):
    """The shop gone from HOSTS, from both engines."""
    for h in hosts:
        h.run("nft delete table inet stacklift_test 2>/dev/null; nft delete table inet stacklift_shop 2>/dev/null; "
              "nft delete table bridge stacklift_shop 2>/dev/null; nft delete table netdev stacklift_shop 2>/dev/null; "
              "podman rm -f -t 0 {c} >/dev/null 2>&1; "
              "podman network rm -f shopnet >/dev/null 2>&1; podman volume rm -f shopcache >/dev/null 2>&1; "
              "docker rm -f {c} >/dev/null 2>&1; "
              "docker network rm -f shopnet >/dev/null 2>&1; docker volume rm -f shopcache >/dev/null 2>&1; "
              "rm -rf {a} /var/lib/stacklift/restored".format(c=" ".join(CONTAINERS), a=ARCHIVE_DIR), check=False)


def running(host, engine="podman"):
    """The shop's containers running on HOST, in ENGINE."""
    return set(host.out("%s ps --format '{{.Names}}'" % engine).split()) & set(CONTAINERS)


def all_containers(host, engine="podman"):
    return host.out("%s ps -a --format '{{.Names}}'" % engine).split()


def volumes(host, engine="podman"):
    return host.out("%s volume ls -q" % engine)


def verify(state):
    res = shopper("verify", state)
    return res.returncode == 0, res.stdout + res.stderr


def report_of(report_dir):
    files = sorted(glob.glob(str(report_dir / "shop-*.json")))
    assert files, "no migration report in %s" % report_dir
    return json.loads(open(files[-1]).read())


def block_shop_port(host, address="10.89.10.4"):
    """The target host cannot reach the shop's port: that tier never gets ready there."""
    host.run("nft -f - <<'EOF'\ntable inet stacklift_test {\n chain out { type filter hook output priority -300; "
             "ip daddr %s tcp dport 8080 drop; }\n}\nEOF" % address)


class LiveClient:
    """A shopper holding one keep-alive connection, sending requests back to back."""

    def __init__(self, tmp, background):
        self.stop, self.out = tmp / "stop-soak", tmp / "soak.json"
        self.proc = shopper("soak", str(self.out), "--stop", str(self.stop), background=True)
        background.append(self.proc)
        time.sleep(1)

    def result(self, context=""):
        """The client's log, checked: CONTEXT (the playbook's output) is shown when it is not right."""
        time.sleep(1)
        self.stop.write_text("")
        log = self.proc.communicate(timeout=300)[0]
        assert self.out.exists(), "the client died: %s\n%s" % (log[-3000:], context[-6000:])
        soak = json.loads(self.out.read_text())
        # A pause, never an error, and the same connection throughout; nothing counted twice.
        assert soak["errors"] == [] and soak["connections"] == 1, (soak["errors"], soak["connections"], log,
                                                                   context[-6000:])
        assert soak["cart"] == {"tea": soak["requests"]}
        return soak


def archive_files(host):
    """Every file under HOST's archive directory but the stack's journal, lock and notes (the archives
    of each run lie in runs/RUN_ID/), as paths relative to it."""
    out = host.run("cd %s 2>/dev/null && find runs -type f 2>/dev/null" % ARCHIVE_DIR, check=False).stdout
    return sorted(out.split())


def marker_steps(host):
    out = host.run("cat %s/shop.journal 2>/dev/null" % ARCHIVE_DIR, check=False).stdout
    return [json.loads(line)["step"] for line in out.splitlines() if line.strip()]
