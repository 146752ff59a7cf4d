"""Debian roots for the lab, built with debootstrap from the mirror this machine's own apt
sources name, and cached under a digest of their recipe. Used by lab.py."""

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

SUITE = "trixie"
CACHE = Path(os.environ.get("STACKLIFT_CACHE", "/var/cache/stacklift"))


def log(msg):
    print("[lab] %s" % msg, flush=True)


def run(cmd, check=True, capture=False, **kw):
    if capture:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
    res = subprocess.run(cmd, check=False, **kw)
    if check and res.returncode != 0:
        err = res.stderr if capture else ""
        raise SystemExit("command failed (%d): %s\n%s" % (res.returncode, " ".join(map(str, cmd)), err or ""))
    return res


# ---------------------------------------------------------------------------
# Debian mirror: always the one this machine's own apt sources name.

def debian_mirror(apt_dir=Path("/etc/apt")):
    candidates = []
    src_dir = Path(apt_dir) / "sources.list.d"
    for f in sorted(src_dir.glob("*.sources")):
        for stanza in f.read_text().split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                for uri in fields.get("uris", "").split():
                    candidates.append(uri)
    legacy = Path(apt_dir) / "sources.list"
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb":
                candidates.append(next(p for p in parts[1:] if not p.startswith("[")))
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise SystemExit("no Debian mirror found in this machine's apt sources")


# ---------------------------------------------------------------------------
# Roots

def recipe_digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()[:16]


class Chroot:
    """Mount what apt needs inside a root while packages are installed."""

    def __init__(self, root):
        self.root = Path(root)

    def __enter__(self):
        for src, dst, opts in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--rbind"]),
                               ("sysfs", "sys", ["-t", "sysfs"])):
            (self.root / dst).mkdir(exist_ok=True)
            run(["mount"] + opts + [src, str(self.root / dst)])
        run(["mount", "--make-rslave", str(self.root / "dev")])
        return self

    def __exit__(self, *exc):
        for dst in ("sys", "dev", "proc"):
            run(["umount", "-R", "-l", str(self.root / dst)], check=False)

    def sh(self, script):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        run(["chroot", str(self.root), "/bin/sh", "-ec", script], env=env)


def build_root(kind, packages, forky_packages=(), post=""):
    mirror = debian_mirror()
    digest = recipe_digest(SUITE, kind, packages, list(forky_packages), post)
    dest = CACHE / "roots" / ("%s-%s" % (kind, digest))
    if (dest / ".stacklift-complete").exists():
        return dest, digest
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        run(["umount", "-R", "-l", str(tmp / "proc"), str(tmp / "dev"), str(tmp / "sys")], check=False, capture=True)
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log("debootstrap %s root (%s) ..." % (kind, SUITE))
    run(["debootstrap", "--variant=minbase", SUITE, str(tmp), mirror], stdout=subprocess.DEVNULL)
    (tmp / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    os.chmod(tmp / "usr/sbin/policy-rc.d", 0o755)
    (tmp / "etc/apt/sources.list").write_text("deb %s %s main\n" % (mirror, SUITE))
    script = ["apt-get update -qq",
              "apt-get install -y -qq --no-install-recommends %s >/dev/null" % " ".join(packages)]
    if forky_packages:
        (tmp / "etc/apt/sources.list.d/forky.list").write_text("deb %s forky main\n" % mirror)
        (tmp / "etc/apt/preferences.d/forky").write_text(
            "Package: *\nPin: release n=forky\nPin-Priority: 100\n")
        (tmp / "etc/apt/apt.conf.d/90forky-valid-until").write_text(
            'Acquire::Check-Valid-Until "false";\n')
        script += ["apt-get update -qq",
                   "apt-get install -y -qq --no-install-recommends -t forky %s >/dev/null" % " ".join(forky_packages)]
    if post:
        script.append(post)
    script += ["apt-get clean", "rm -rf /var/lib/apt/lists/*"]
    with Chroot(tmp) as ch:
        ch.sh("\n".join(script))
    (tmp / "usr/sbin/policy-rc.d").unlink()
    (tmp / ".stacklift-complete").write_text(digest + "\n")
    os.rename(tmp, dest)
    for old in (CACHE / "roots").glob(kind + "-*"):
        if old != dest and not old.name.endswith(".tmp"):
            shutil.rmtree(old, ignore_errors=True)
    log("%s root built in %.0f s" % (kind, time.time() - t0))
    return dest, digest
