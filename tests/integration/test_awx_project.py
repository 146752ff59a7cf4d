"""What AWX and ansible-builder read of the project: the execution environment definition, the
collection's own requirements for it, and the job templates' surveys."""

import os
import subprocess

import yaml

from labhosts import BIN, REPO


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300, **kw)
    assert res.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(cmd), res.stdout, res.stderr)
    return res.stdout


def test_ansible_builder_accepts_the_definition_and_finds_the_collections_requirements(tmp_path):
    context = tmp_path / "context"
    run([str(BIN / "ansible-builder"), "create", "-f", str(REPO / "examples" / "awx" / "execution-environment.yml"),
         "-c", str(context)])
    files = [p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()]
    assert files, "no Containerfile in %s: %s" % (context, sorted(str(p) for p in context.rglob("*")))
    containerfile = files[0]
    assert "ansible-galaxy" in containerfile.read_text() and "EE_BASE_IMAGE" in containerfile.read_text()
    # the build installs exactly this release: its tag, which is galaxy.yml's version, and so does a project
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    pinned = {"name": "https://github.com/stacklift/stacklift.migrate.git", "type": "git", "version": version}
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert galaxy["collections"] == [pinned]
    assert yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())["collections"] == [pinned]
    assert "stacklift-ee:%s" % version in yaml.safe_load(
        (REPO / "examples" / "awx" / "execution-environment.yml").read_text())["options"]["tags"]

    # The collection as Galaxy serves it (built, installed) declares its controller-side requirements
    # the standard way (meta/execution-environment.yml), which ansible-builder's introspection reads.
    # Away from the checkout's ansible.cfg (make exports it), whose collections path holds the checkout:
    # ansible-galaxy would find the collection installed there and install nothing.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp_path / "installed")
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(REPO)],
        cwd=str(tmp_path), env=env)
    tarball = next(tmp_path.glob("stacklift-migrate-*.tar.gz"))
    out = run([str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(tmp_path / "installed"), str(tarball)],
              cwd=str(tmp_path), env=env)
    assert (tmp_path / "installed" / "ansible_collections" / "stacklift" / "migrate" / "MANIFEST.json").exists(), out
    found = yaml.safe_load(run([str(BIN / "ansible-builder"), "introspect", "--sanitize", str(tmp_path / "installed")]))
    assert "jmespath>=1.0  # from collection stacklift.migrate" in found["python"]
    assert "openssh-client [platform:dpkg]  # from collection stacklift.migrate" in found["system"]
