"""The stacklift lab: N Debian 13 hosts on one machine, each in its own namespaces.

Every host runs Podman, runc, CRIU (4.2+, from forky) and sshd, keeps its own
container storage, and is reached over SSH at its own address on a bridge that
lives in a network namespace the lab made (``stacklift-lab``).  Nothing of the
lab has an address in the machine's own namespace: the controller reaches the
bridge through an ``nsenter`` proxy command, which the inventory carries.

Usage: lab.py build | up [--nodes N] | status | down
Needs root.  Roots and images are cached in $STACKLIFT_CACHE (default
/var/cache/stacklift) under a digest of their recipe, so they are rebuilt only
when the recipe changes.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import engines as lab_engines  # noqa: E402  (lab/engines.py)
import images as image_recipes  # noqa: E402  (lab/images.py)
from roots import CACHE, build_root, log, run  # noqa: E402  (lab/roots.py)

STATE = Path(os.environ.get("STACKLIFT_LAB_DIR", REPO / ".lab"))
LAB_NETNS = "stacklift-lab"
BRIDGE = "br0"
SUBNET_PREFIX = "10.231.0"   # only ever used inside namespaces the lab made
BRIDGE_ADDR = SUBNET_PREFIX + ".1"
# Where the lab's stacks put their container networks (routed to the lab's clients).
CONTAINER_NETS = "10.89.0.0/16"
# A client "machine" on the lab bridge, for test traffic to the stacks the hosts run.
CLIENT_NETNS = "stacklift-client"
CLIENT_ADDR = SUBNET_PREFIX + ".100"
IMAGES_IN_HOST = "/var/cache/stacklift-images"

# The host root: Podman with runc (crun refuses hybrid cgroups), its network
# stack, sshd and Python for Ansible, paramiko for host-to-host transfers; and
# the Docker engine beside it (the same runc and CRIU), driven through the SDK.
HOST_PACKAGES = [
    "podman", "runc", "conmon", "catatonit", "netavark", "aardvark-dns",
    "docker.io", "docker-cli", "containerd",
    "nftables", "iproute2", "openssh-server", "openssh-client", "python3",
    "python3-paramiko", "python3-docker", "procps", "zstd", "tar", "ca-certificates",
    "kmod", "iptables", "conntrack", "sudo",
]
# CRIU 4.1 cannot dump TCP sockets on Linux >= 6.16; forky has 4.2.
HOST_FORKY_PACKAGES = ["criu"]


def ensure_tools():
    missing = [t for t in ("debootstrap", "nsenter", "unshare", "ip", "ssh", "ssh-keygen", "nc", "gcc", "tar")
               if shutil.which(t) is None]
    if missing:
        raise SystemExit("missing tools on the controller: %s (run `make deps`)" % ", ".join(missing))


HOST_POST = r"""
mkdir -p /etc/containers /root/.ssh /run/sshd
cat >/etc/containers/containers.conf <<'EOF'
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "netavark"
firewall_driver = "nftables"
EOF
cat >/etc/containers/storage.conf <<'EOF'
[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
cat >/etc/ssh/sshd_config.d/stacklift.conf <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
SetEnv PODMAN_IGNORE_CGROUPSV1_WARNING=1
MaxStartups 100:30:200
MaxSessions 100
EOF
rm -f /etc/ssh/ssh_host_*
# A user that is not root, with passwordless sudo, as real hosts that refuse root logins have
# (a test reaches the hosts as it, with become, and sends host to host as it).
id -u stacklift >/dev/null 2>&1 || useradd -m -u 1500 -s /bin/bash stacklift
echo 'stacklift ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/stacklift
chmod 0440 /etc/sudoers.d/stacklift
# CRIU options for Docker's checkpoints, named per container by the annotation org.criu.config
# (Docker has no option of its own for them; /etc/criu/runc.conf would apply to Podman's too).
mkdir -p /etc/criu
printf 'tcp-established\nfile-locks\n' >/etc/criu/stacklift-docker.conf
"""


def build_host_root():
    return build_root("host", HOST_PACKAGES, HOST_FORKY_PACKAGES, HOST_POST)


def build_images():
    root, digest = build_root("image", image_recipes.IMAGE_ROOT_PACKAGES, post=image_recipes.IMAGE_ROOT_TRIM)
    return image_recipes.build_archive(root, digest, CACHE / "images", log)


# ---------------------------------------------------------------------------
# Hosts

def node_names(n):
    return ["node%d" % i for i in range(1, n + 1)]


def node_addr(name):
    return "%s.%d" % (SUBNET_PREFIX, 10 + int(name[4:]))


def netns_exists(name):
    return Path("/run/netns", name).exists()


def host_pid(name):
    """PID (in the machine's namespace) of the host's init, or None."""
    pidfile = STATE / name / "init.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text())
    try:
        # The unshare process forks the host's PID 1; its comm tells it is ours.
        children = Path("/proc/%d/task/%d/children" % (pid, pid)).read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def in_host(name, cmd, **kw):
    pid = host_pid(name)
    return run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--"] + cmd, **kw)


INIT_SH = r"""#!/bin/sh
# PID 1 of a lab host, before it becomes catatonit+sshd.  Args: lower state name images pubkey
set -e
lower=$1 state=$2 name=$3 images=$4 pubkey=$5
root=$state/root
mkdir -p $state/upper $state/work $state/storage $state/docker $state/containerd $root
mount -t overlay overlay -o lowerdir=$lower,upperdir=$state/upper,workdir=$state/work $root
mkdir -p $root/var/lib/containers $root/var/lib/docker $root/var/lib/containerd
# The engines' storage must not sit on overlayfs.
mount --bind $state/storage $root/var/lib/containers
mount --bind $state/docker $root/var/lib/docker
mount --bind $state/containerd $root/var/lib/containerd
mount -t proc proc $root/proc
mount -t sysfs sysfs $root/sys
mount --rbind /sys/fs/cgroup $root/sys/fs/cgroup
mount -t devtmpfs devtmpfs $root/dev
mkdir -p $root/dev/pts $root/dev/shm
mount -t devpts devpts $root/dev/pts -o newinstance,ptmxmode=0666
mount --bind $root/dev/pts/ptmx $root/dev/ptmx
mount -t tmpfs tmpfs $root/dev/shm
mount -t tmpfs tmpfs $root/run
mount -t tmpfs tmpfs $root/tmp
mkdir -p $root/var/cache/stacklift-images
mount --bind -o ro $images $root/var/cache/stacklift-images
mkdir -p $root/run/netns $root/run/sshd $root/root/.ssh $root/.oldroot
install -m 0600 $pubkey $root/root/.ssh/authorized_keys
install -d -m 0700 -o 1500 -g 1500 $root/home/stacklift/.ssh
install -m 0600 -o 1500 -g 1500 $pubkey $root/home/stacklift/.ssh/authorized_keys
install -m 0600 ${pubkey%.pub} $root/root/.ssh/id_ed25519
hostname $name
echo $name > $root/etc/hostname
cd $root
pivot_root . .oldroot
umount -l /.oldroot
rmdir /.oldroot
[ -e /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A >/dev/null
# Container addresses are routable from the lab's clients, without NAT (as with routed container
# networks in a datacenter): that traffic is not tracked, so a restored connection is not
# masqueraded by a host whose conntrack never saw it start.
nft -f - <<EOF
table inet stacklift_lab_routing {
  chain prerouting {
    type filter hook prerouting priority -300;
    ip saddr LAB_NET ip daddr CONTAINER_NETS notrack
    ip saddr CONTAINER_NETS ip daddr LAB_NET notrack
  }
}
EOF
INIT_DOCKER
# Port 2222 too: a test moves a stack with every host reached there (ansible_port), host to host included.
exec /usr/bin/catatonit -- /usr/sbin/sshd -D -e -p 22 -p 2222
"""


def ensure_ssh_key():
    key = STATE / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stacklift-lab", "-f", str(key)])
    return key


def proxy_command():
    return "nsenter --net=/run/netns/%s nc %%h %%p" % LAB_NETNS


def ssh_base(key):
    return ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=5", "-o", "ProxyCommand=" + proxy_command()]


def ensure_lab_network():
    if not netns_exists(LAB_NETNS):
        run(["ip", "netns", "add", LAB_NETNS])
    ip = ["ip", "-n", LAB_NETNS]
    if run(ip + ["link", "show", BRIDGE], check=False, capture=True).returncode != 0:
        run(ip + ["link", "add", BRIDGE, "type", "bridge"])
        run(ip + ["addr", "add", BRIDGE_ADDR + "/24", "dev", BRIDGE])
    run(ip + ["link", "set", BRIDGE, "up"])
    run(ip + ["link", "set", "lo", "up"])


def ensure_client():
    """A network namespace with an address on the lab bridge, from which tests act as users do."""
    if not netns_exists(CLIENT_NETNS):
        run(["ip", "netns", "add", CLIENT_NETNS])
    if run(["ip", "-n", LAB_NETNS, "link", "show", "vclient"], check=False, capture=True).returncode != 0:
        run(["ip", "-n", LAB_NETNS, "link", "add", "vclient", "type", "veth", "peer", "name", "eth0",
             "netns", CLIENT_NETNS])
    run(["ip", "-n", LAB_NETNS, "link", "set", "vclient", "master", BRIDGE, "up"])
    have = run(["ip", "-n", CLIENT_NETNS, "-4", "-o", "addr", "show", "dev", "eth0"], capture=True).stdout
    if CLIENT_ADDR not in have:
        run(["ip", "-n", CLIENT_NETNS, "addr", "add", CLIENT_ADDR + "/24", "dev", "eth0"])
    run(["ip", "-n", CLIENT_NETNS, "link", "set", "eth0", "up"])
    run(["ip", "-n", CLIENT_NETNS, "link", "set", "lo", "up"])


def start_host(name, host_root, image_dir, key):
    state = STATE / name
    if host_pid(name):
        return False
    netns = "stacklift-" + name
    if not netns_exists(netns):
        run(["ip", "netns", "add", netns])
    veth = "v" + name
    if run(["ip", "-n", LAB_NETNS, "link", "show", veth], check=False, capture=True).returncode != 0:
        run(["ip", "-n", LAB_NETNS, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns])
    run(["ip", "-n", LAB_NETNS, "link", "set", veth, "master", BRIDGE, "up"])
    addr = node_addr(name)
    have = run(["ip", "-n", netns, "-4", "-o", "addr", "show", "dev", "eth0"], capture=True).stdout
    if addr not in have:
        run(["ip", "-n", netns, "addr", "add", addr + "/24", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    # A fresh host every time: the state of a host that is down is not reused.
    if state.exists():
        shutil.rmtree(state)
    state.mkdir(parents=True)
    init = state / "init.sh"
    init.write_text(INIT_SH.replace("LAB_NET", SUBNET_PREFIX + ".0/24").replace("CONTAINER_NETS", CONTAINER_NETS)
                    .replace("INIT_DOCKER", lab_engines.init_docker(name)))
    out = open(state / "console.log", "w")
    proc = subprocess.Popen(
        ["nsenter", "--net=/run/netns/" + netns, "unshare", "--mount", "--pid", "--ipc", "--uts",
         "--fork", "--propagation", "private", "--", "/bin/sh", str(init),
         str(host_root), str(state), name, str(image_dir), str(key) + ".pub"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (state / "init.pid").write_text(str(proc.pid))
    return True


def wait_ssh(names, key, timeout=60):
    deadline = time.time() + timeout
    pending = set(names)
    while pending and time.time() < deadline:
        for name in sorted(pending):
            res = run(ssh_base(key) + ["root@" + node_addr(name), "true"], check=False, capture=True)
            if res.returncode == 0:
                pending.discard(name)
        if pending:
            time.sleep(0.5)
    if pending:
        logs = {n: (STATE / n / "console.log").read_text()[-2000:] for n in pending if (STATE / n / "console.log").exists()}
        raise SystemExit("hosts did not answer on SSH: %s\n%s" % (", ".join(sorted(pending)), json.dumps(logs, indent=1)))


def load_images(name, key, archive, image_ids):
    """The lab's images into both engines of the host (the same IDs in each)."""
    ssh = ssh_base(key) + ["root@" + node_addr(name)]
    run(ssh + [lab_engines.wait_docker_command()], capture=True)
    for engine in lab_engines.ENGINES:
        have = run(ssh + [lab_engines.image_ids_command(engine)], capture=True).stdout.split()
        have = {h.split(":")[-1] for h in have}
        if not all(i.split(":")[-1] in have for i in image_ids.values()):
            run(ssh + [lab_engines.load_command(engine, "%s/%s" % (IMAGES_IN_HOST, archive.name))], capture=True)


def control_path_dir():
    return STATE / "cp"


def close_ssh_masters():
    """Ask the SSH connection masters Ansible left for this lab to exit, then drop their sockets."""
    cp = control_path_dir()
    if not cp.exists():
        return
    for sock in cp.iterdir():
        run(["ssh", "-o", "ControlPath=%s" % sock, "-O", "exit", "lab"], check=False, capture=True, timeout=10)
    shutil.rmtree(cp, ignore_errors=True)


def write_inventory(names, key):
    lines = [
        "# Written by `make lab`; the lab's hosts and how to reach them.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        "    ansible_python_interpreter: /usr/bin/python3",
        "    ansible_ssh_private_key_file: %s" % key,
        "    ansible_ssh_common_args: >-",
        "      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        "      -o ServerAliveInterval=5 -o ServerAliveCountMax=3",
        "      -o ProxyCommand=\"%s\"" % proxy_command(),
        "    # SSH connection sharing of this lab only: a master left from an earlier lab at the same",
        "    # addresses would otherwise be reused, and hang.",
        "    ansible_control_path_dir: %s" % control_path_dir(),
        "    # Host-to-host transfers use this key, which every lab host holds.",
        "    stacklift_ssh_key_on_host: /root/.ssh/id_ed25519",
        "    # A network namespace on the lab bridge where tests and the demo act as clients.",
        "    stacklift_lab_client_netns: %s" % CLIENT_NETNS,
        "  children:",
        "    lab:",
        "      hosts:",
    ]
    for n in names:
        lines += ["        %s:" % n, "          ansible_host: %s" % node_addr(n)]
    (STATE / "inventory.yml").write_text("\n".join(lines) + "\n")


def cmd_build(args):  # pylint: disable=unused-argument
    ensure_tools()
    build_host_root()
    build_images()


def cmd_up(args):
    ensure_tools()
    t0 = time.time()
    host_root = build_host_root()[0]
    archive, image_ids = build_images()
    key = ensure_ssh_key()
    names = node_names(args.nodes)
    ensure_lab_network()
    STATE.mkdir(parents=True, exist_ok=True)
    if not any(host_pid(n) for n in known_nodes()):
        note_cgroup_parent()
    ensure_client()
    started = [n for n in names if start_host(n, host_root, archive.parent, key)]
    wait_ssh(names, key)
    for n in names:
        load_images(n, key, archive, image_ids)
    control_path_dir().mkdir(mode=0o700, exist_ok=True)
    write_inventory(names, key)
    (STATE / "images.json").write_text(json.dumps(image_ids, indent=2, sort_keys=True) + "\n")
    (STATE / "nodes").write_text("\n".join(names) + "\n")
    log("lab up in %.1f s (%s started, %d hosts)" % (time.time() - t0, ", ".join(started) or "none", len(names)))
    log("inventory: %s" % (STATE / "inventory.yml"))


def known_nodes():
    names = set()
    if (STATE / "nodes").exists():
        names.update((STATE / "nodes").read_text().split())
    if STATE.exists():
        names.update(p.parent.name for p in STATE.glob("node*/init.pid"))
    for p in Path("/run/netns").glob("stacklift-node*") if Path("/run/netns").exists() else []:
        names.add(p.name[len("stacklift-"):])
    return sorted(names)


def cmd_status(args):  # pylint: disable=unused-argument
    names = known_nodes()
    if not names and not netns_exists(LAB_NETNS):
        print("lab: down")
        return 0
    key = STATE / "ssh" / "id_ed25519"
    rc = 0
    for n in names:
        pid = host_pid(n)
        if not pid:
            print("%s: down" % n)
            rc = 1
            continue
        res = run(ssh_base(key) + ["root@" + node_addr(n),
                                   "podman --version; docker --version; criu --version | head -1; "
                                   "podman images --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}'; "
                                   "podman ps -a --format '{{.Names}} {{.Status}}'; "
                                   "docker ps -a --format 'docker: {{.Names}} {{.Status}}'"],
                  check=False, capture=True)
        rss = host_rss_kib(pid)
        print("%s: up at %s, init pid %d, memory %.1f MiB" % (n, node_addr(n), pid, rss / 1024.0))
        for line in res.stdout.strip().splitlines():
            print("    " + line)
        if res.returncode:
            rc = 1
    return rc


def host_rss_kib(pid):
    """Resident memory of every process in the host's PID namespace."""
    try:
        ns = os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return 0
    total = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if os.readlink(p / "ns/pid") != ns:
                continue
            for line in (p / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def container_cgroup_ids(name):
    ids = []
    for cmd in lab_engines.container_ids_commands():
        res = in_host(name, cmd, check=False, capture=True)
        ids += res.stdout.split() if res.returncode == 0 else []
    return ids


def thaw(name, ids):
    for d in lab_engines.cgroup_dirs(name, ids):
        state = d / "freezer.state"
        if state.exists() and "FROZEN" in state.read_text():
            state.write_text("THAWED")


def stop_host(name):
    pid = host_pid(name)
    ids = []
    if pid:
        ids = container_cgroup_ids(name)
        # A frozen cgroup would hang the teardown; thaw our containers first.
        thaw(name, ids)
        for cmd in lab_engines.remove_all_commands():
            in_host(name, cmd, check=False, capture=True)
        thaw(name, ids)
        os.kill(pid, signal.SIGKILL)   # PID 1 of the host's namespace: takes all of it down
        unshare_pid = int((STATE / name / "init.pid").read_text())
        for _attempt in range(100):
            try:
                os.waitpid(unshare_pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not Path("/proc/%d" % unshare_pid).exists():
                break
            time.sleep(0.1)
    for d in sorted(lab_engines.cgroup_dirs(name, ids), key=lambda p: -len(p.parts)) + \
            lab_engines.leftover_parent_dirs(name):
        try:
            d.rmdir()
        except OSError:
            pass
    netns = "stacklift-" + name
    if netns_exists(netns):
        run(["ip", "netns", "del", netns])
    state = STATE / name
    if state.exists():
        shutil.rmtree(state, ignore_errors=True)


CGROUP_PARENT = "libpod_parent"   # where Podman (cgroupfs manager) puts its cgroups
CGROUP_MARKER = "cgroup-parent-made-by-lab"


def note_cgroup_parent():
    """Remember whether the lab's Podman will be the one to create libpod_parent."""
    if not list(Path("/sys/fs/cgroup").glob("*/" + CGROUP_PARENT)):
        (STATE / CGROUP_MARKER).write_text("1\n")


def remove_cgroup_parent():
    if not (STATE / CGROUP_MARKER).exists():
        return
    for d in sorted(Path("/sys/fs/cgroup").glob("*/%s/conmon" % CGROUP_PARENT)) + \
            sorted(Path("/sys/fs/cgroup").glob("*/" + CGROUP_PARENT)):
        try:
            d.rmdir()
        except OSError:
            pass
    (STATE / CGROUP_MARKER).unlink()


def cmd_down(args):  # pylint: disable=unused-argument
    close_ssh_masters()
    for n in known_nodes():
        stop_host(n)
        log("%s down" % n)
    remove_cgroup_parent()
    for netns in (CLIENT_NETNS, LAB_NETNS):
        if netns_exists(netns):
            run(["ip", "netns", "del", netns])
    for f in ("inventory.yml", "nodes", "images.json"):
        (STATE / f).unlink(missing_ok=True)
    log("lab down")


def main():
    if os.geteuid() != 0:
        raise SystemExit("the lab needs root (namespaces, mounts, CRIU)")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build").set_defaults(fn=cmd_build)
    up = sub.add_parser("up")
    up.add_argument("--nodes", type=int, default=int(os.environ.get("LAB_NODES", "2")))
    up.set_defaults(fn=cmd_up)
    sub.add_parser("status").set_defaults(fn=cmd_status)
    sub.add_parser("down").set_defaults(fn=cmd_down)
    args = p.parse_args()
    sys.exit(args.fn(args) or 0)


if __name__ == "__main__":
    main()
