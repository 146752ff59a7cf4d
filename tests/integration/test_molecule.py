"""The roles' Molecule scenario (extensions/molecule/shop), on the lab's hosts."""

import os
import subprocess

from labhosts import BIN, REPO


def test_molecule_shop_scenario(lab):
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    env.pop("ANSIBLE_CONFIG", None)  # molecule writes its own
    res = subprocess.run([str(BIN / "molecule"), "test", "-s", "shop"], cwd=str(REPO / "extensions"), env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    for step in ("prepare", "converge", "idempotence", "verify", "destroy"):
        assert "%s" % step in out
    assert "1 successful" in out
