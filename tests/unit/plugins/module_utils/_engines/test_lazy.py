"""The lazy-restore wrapper run for real (sh), with stand-ins for runc and criu on its PATH; its install plan; the
states of a fill as the wrapper leaves them."""

import os
import subprocess
import sys
import time

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree
from ansible_collections.stacklift.migrate.plugins.module_utils._engines import lazy
from ansible_collections.stacklift.migrate.tests.unit.fakes import criu_checkpoint as checkpoint, snapshot

FAKE_RUNC = """#!/bin/sh
printf '%s\\n' "$@" > "{log}"
"""
# criu lazy-pages as the wrapper starts it: it opens its socket in the work dir, then fills (sleeps) and ends.
FAKE_CRIU = """#!/bin/sh
[ "$1" = lazy-pages ] || exit 9
work=$5
echo "$@" > "$work/../criu.args"
{python} -c 'import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); time.sleep(float(sys.argv[2]))' \\
  "$work/lazy-pages.socket" {fill}
exit {rc}
"""


def setup(tmp_path, fill=0.3, rc=0, socket=True):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    runc, criu, log = bin_dir / "runc", bin_dir / "criu", tmp_path / "runc.args"
    runc.write_text(FAKE_RUNC.format(log=log))
    criu_text = FAKE_CRIU.format(python=sys.executable, fill=fill, rc=rc)
    criu.write_text(criu_text if socket else "#!/bin/sh\nexit 3\n")
    requests = tmp_path / "requests"
    wrapper, helper, tree_helper = tmp_path / "wrapper", tmp_path / "pages.py", tmp_path / "tree.py"
    wrapper.write_text(lazy.wrapper_text(str(runc), sys.executable, str(requests), helper=str(helper),
                                         tree_helper=str(tree_helper)))
    helper.write_text(lazy.helper_text())
    tree_helper.write_text(lazy.helper_text(tree))
    for f in (runc, criu, wrapper):
        f.chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))
    return wrapper, requests, log, env


CID = "0123456789abcdef" * 4
RESTORE = ["--root", "/run/runc", "restore", "--detach", "--image-path", "/b/checkpoint", "--work-path", None, CID]


def restore_args(tmp_path):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return [str(work) if a is None else a for a in RESTORE]


@pytest.mark.parametrize("args", [["--root", "/run/runc", "state", CID], ["checkpoint", "--help"], RESTORE])
def test_every_call_but_a_requested_restore_reaches_runc_unchanged(tmp_path, args):
    wrapper, _requests, log, env = setup(tmp_path)
    args = restore_args(tmp_path) if args is RESTORE else args
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)
    assert log.read_text().splitlines() == args


def test_a_requested_restore_starts_the_fill_and_runs_lazily(tmp_path):
    wrapper, requests, log, env = setup(tmp_path)
    lazy.request_lazy(CID, str(requests))
    args = restore_args(tmp_path)
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)
    assert log.read_text().splitlines() == args[:3] + ["--lazy-pages"] + args[3:]
    assert lazy.fill_state(CID, str(requests))["state"] == "filling"
    deadline = time.time() + 10
    while lazy.fill_state(CID, str(requests))["state"] == "filling" and time.time() < deadline:
        time.sleep(0.05)
    assert lazy.fill_state(CID, str(requests)) == {"state": "resident", "detail": None, "finish": None}
    # the request is for one restore: released, the next restore of that ID is eager
    lazy.release_request(CID, str(requests))
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)
    assert "--lazy-pages" not in log.read_text().splitlines()


def staged(tmp_path):
    """A bundle whose root lacks a file, and a stage holding it (tree.receive), with its manifest's digest."""
    upper, stage, bundle = tmp_path / "upper", tmp_path / "stage", tmp_path / "bundle"
    (upper / "data").mkdir(parents=True)
    (upper / "data/table").write_bytes(b"rows")
    (bundle / "root").mkdir(parents=True)
    (bundle / "config.json").write_text('{"root": {"path": "root"}}')
    entries, records = {}, []
    for record, data in tree.changes(str(upper), {}, out=entries):
        records.append(tree.encode(record, data))
    records.append(tree.encode({"op": "end", "entries": entries}))
    subprocess.run([sys.executable, tree.__file__, "receive", str(stage)], input=b"".join(records), check=True)
    return stage, bundle, tree.digest_of(entries)


def test_a_restore_with_staged_files_has_them_in_its_root_before_runc_and_none_if_they_do_not_check(tmp_path):
    wrapper, requests, log, env = setup(tmp_path)
    stage, bundle, digest = staged(tmp_path)
    args = restore_args(tmp_path)
    args = args[:3] + ["--bundle", str(bundle)] + args[3:]
    lazy.request_files(CID, [{"stage": str(stage), "digest": digest, "into": "/"}], str(requests))
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)
    assert (bundle / "root/data/table").read_bytes() == b"rows" and log.read_text().splitlines() == args
    # a stage that is not what the archive was made with: runc is never called, and the engine hears why
    log.unlink()
    (bundle / "root/data/table").unlink()
    lazy.request_files(CID, [{"stage": str(stage), "digest": "e" * 64, "into": "/"}], str(requests))
    got = subprocess.run([str(wrapper)] + args, env=env, capture_output=True, timeout=30, check=False)
    assert got.returncode == 1 and b"not those the archive was made with" in got.stderr and not log.exists()
    assert not (bundle / "root/data/table").exists()
    lazy.release_files(CID, str(requests))
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)  # released: the next restore is plain
    assert not (bundle / "root/data/table").exists() and log.read_text().splitlines() == args


def test_a_fill_that_dies_is_failed_and_a_daemon_that_never_starts_fails_the_restore(tmp_path):
    wrapper, requests, log, env = setup(tmp_path, fill=0.2, rc=1)
    lazy.request_lazy(CID, str(requests))
    subprocess.run([str(wrapper)] + restore_args(tmp_path), env=env, check=True, timeout=30)
    time.sleep(1.0)
    state = lazy.fill_state(CID, str(requests))
    assert state["state"] == "failed" and "exited 1" in state["detail"]
    wrapper, requests, log, env = setup(tmp_path / "x", socket=False)
    lazy.request_lazy(CID, str(requests))
    res = subprocess.run([str(wrapper)] + restore_args(tmp_path), env=env, capture_output=True, text=True, timeout=30,
                         check=False)
    assert res.returncode == 1 and "lazy-pages did not start" in res.stderr and not log.exists()


def test_a_remote_request_has_the_daemon_take_the_pages_from_the_page_server(tmp_path):
    wrapper, requests, log, env = setup(tmp_path)
    lazy.request_lazy(CID, str(requests), page_server={"port": 40123, "token": "0f" * 16})
    subprocess.run([str(wrapper)] + restore_args(tmp_path), env=env, check=True, timeout=30)
    assert "--lazy-pages" in log.read_text().splitlines()
    assert (tmp_path / "criu.args").read_text().split()[-5:] == [
        "--page-server", "--address", "127.0.0.1", "--port", "40123"]


def test_a_requested_checkpoint_is_split_after_runc_and_a_restore_in_place_gets_its_pages_back(tmp_path):
    wrapper, requests, log, env = setup(tmp_path)
    img = checkpoint(tmp_path)
    whole = snapshot(img)
    args = ["--root", "/run/runc", "checkpoint", "--image-path", str(img), "--work-path", str(tmp_path), CID]
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)  # not asked: runc only
    assert log.read_text().splitlines() == args and snapshot(img) == whole
    lazy.request_split(CID, str(requests))
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)
    assert log.read_text().splitlines() == args
    outcome = lazy.split_outcome(CID, str(requests))
    assert outcome == {"pids": [7], "lazy_bytes": 7 * 4096, "image_dir": str(img)}
    assert snapshot(img) != whole and lazy.split_outcome(CID, str(requests)) is None  # the request is gone
    # a restore that is not lazy (a rollback, in place): the pages come back before runc restores
    restore = ["restore", "--image-path", str(img), "--work-path", str(tmp_path), CID]
    subprocess.run([str(wrapper)] + restore, env=env, check=True, timeout=30)
    assert log.read_text().splitlines() == restore and snapshot(img) == whole


def test_a_checkpoint_asked_into_scratch_is_written_there_and_only_its_rest_reaches_the_engines_directory(tmp_path):
    wrapper, requests, log, env = setup(tmp_path)
    made = checkpoint(tmp_path)  # what CRIU writes, copied by this runc to the image path it is given
    whole = snapshot(made)
    (tmp_path / "bin" / "runc").write_text(FAKE_RUNC.format(log=log) + """prev=
for a in "$@"; do [ "$prev" = --image-path ] && mkdir -p "$a" && cp {made}/* "$a"/; prev=$a; done
""".format(made=made))
    home, scratch = tmp_path / "userdata" / "checkpoint", tmp_path / "shm"
    home.mkdir(parents=True)
    lazy.request_split(CID, str(requests), scratch=str(scratch))
    args = ["checkpoint", "--image-path", str(home), "--work-path", str(tmp_path), CID]
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)
    # runc wrote into the scratch directory; the engine's directory has the split rest, the pages stay in scratch
    assert log.read_text().splitlines() == ["checkpoint", "--image-path", str(scratch / CID / "img"),
                                            "--work-path", str(tmp_path), CID]
    assert lazy.split_outcome(CID, str(requests)) == {"pids": [7], "lazy_bytes": 7 * 4096, "image_dir": str(home)}
    assert os.path.realpath(str(home) + ".stacklift-pages") == str(scratch / CID / "img.stacklift-pages")
    assert not (scratch / CID / "img").exists() and snapshot(home) != whole
    restore = ["restore", "--image-path", str(home), "--work-path", str(tmp_path), CID]
    subprocess.run([str(wrapper)] + restore, env=env, check=True, timeout=30)
    assert snapshot(home) == whole and not (scratch / CID).exists()
    with pytest.raises(ValueError):
        lazy.request_split(CID, str(requests), scratch="shm; rm -rf /")


def test_a_pre_copied_checkpoint_is_asked_to_continue_its_last_pre_dump(tmp_path):
    wrapper, requests, log, env = setup(tmp_path)
    img = checkpoint(tmp_path)
    parent = str(tmp_path / "pre" / CID / "3")
    args = ["--root", "/run/runc", "checkpoint", "--image-path", str(img), "--work-path", str(tmp_path), CID]
    lazy.request_parent(CID, parent, str(requests))
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)  # no split asked: runc as it was called
    assert log.read_text().splitlines() == args
    lazy.request_split(CID, str(requests))
    subprocess.run([str(wrapper)] + args, env=env, check=True, timeout=30)
    assert log.read_text().splitlines() == args[:3] + ["--parent-path", parent] + args[3:]
    assert lazy.split_outcome(CID, str(requests))["pids"] == [7]
    assert not os.listdir(str(requests))  # both requests gone with the checkpoint
    with pytest.raises(ValueError):
        lazy.request_parent(CID, "../3")


def test_a_split_that_fails_leaves_the_checkpoint_whole_and_says_why(tmp_path):
    wrapper, requests, _log, env = setup(tmp_path)
    img = checkpoint(tmp_path)
    (img / "pages-3.img").write_bytes(b"short")
    whole = snapshot(img)
    lazy.request_split(CID, str(requests))
    subprocess.run([str(wrapper), "checkpoint", "--image-path", str(img), CID], env=env, check=True, timeout=30)
    assert "does not hold the pages" in lazy.split_outcome(CID, str(requests))["error"] and snapshot(img) == whole


def test_fill_states(tmp_path):
    d = str(tmp_path)
    assert lazy.fill_state(CID, d)["state"] == "none"
    (tmp_path / (CID + ".pid")).write_text("%d\n" % os.getpid())
    assert lazy.fill_state(CID, d)["state"] == "filling"
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / (CID + ".pid")).write_text("%d\n" % dead.pid)
    assert "gone without a status" in lazy.fill_state(CID, d)["detail"]
    (tmp_path / (CID + ".rc")).write_text("137\n")
    (tmp_path / (CID + ".log")).write_text("a\nb\nuffd: killed\n")
    assert lazy.fill_state(CID, d) == {"state": "failed", "detail": "criu lazy-pages exited 137: a / b / uffd: killed",
                                       "finish": None}
    (tmp_path / (CID + ".finish")).write_text('{"state": "done", "pages": 3, "seconds": 0.5}')
    assert lazy.fill_state(CID, d)["finish"] == {"state": "done", "pages": 3, "seconds": 0.5}
    with pytest.raises(ValueError):
        lazy.request_lazy("../etc", d)


def test_a_remote_request_names_the_page_server_and_its_token(tmp_path):
    d = str(tmp_path)
    (tmp_path / (CID + ".finish")).write_text("{}")
    lazy.request_lazy(CID, d, page_server={"port": 40001, "token": "ab" * 16})
    assert (tmp_path / (CID + ".request")).read_text() == "remote 127.0.0.1 40001 %s\n" % ("ab" * 16)
    assert not (tmp_path / (CID + ".finish")).exists()  # an earlier fill's record goes
    with pytest.raises(ValueError):
        lazy.request_lazy(CID, d, page_server={"port": 40001, "token": "ab; rm -rf /"})


def test_install_plan_is_empty_once_installed_and_removes_what_it_wrote(tmp_path):
    wrapper, dropin = str(tmp_path / "libexec" / "runc"), str(tmp_path / "conf.d" / "50.conf")
    helper, tree_helper = str(tmp_path / "libexec" / "pages.py"), str(tmp_path / "libexec" / "tree.py")
    where = dict(wrapper=wrapper, dropin=dropin, helper=helper, tree_helper=tree_helper)
    plan = lazy.install_plan("/usr/sbin/runc", "/usr/bin/python3", **where)
    assert sorted(plan) == sorted([wrapper, dropin, helper, tree_helper]) and 'REAL=/usr/sbin/runc' in plan[wrapper]
    assert "TREE=%s" % tree_helper in plan[wrapper] and "def apply(stage, root" in plan[tree_helper]
    assert "PY=/usr/bin/python3" in plan[wrapper] and "HELPER=%s" % helper in plan[wrapper]
    assert 'runc = ["%s"]' % wrapper in plan[dropin]
    assert "def split(image_dir, home=None)" in plan[helper]  # the pages module itself, whole
    lazy.apply_plan(plan, wrapper=wrapper)
    assert os.access(wrapper, os.X_OK)
    assert lazy.install_plan("/usr/sbin/runc", "/usr/bin/python3", **where) == {}
    assert list(lazy.install_plan("/usr/bin/runc", "/usr/bin/python3", **where)) == [wrapper]
    assert lazy.install_plan("/x", "/y", present=False, **where) == {wrapper: None, dropin: None, helper: None,
                                                                     tree_helper: None}
    lazy.apply_plan(lazy.install_plan("/x", "/y", present=False, **where), wrapper=wrapper)
    assert not os.path.exists(wrapper) and not os.path.exists(helper)
    for bad in (("/usr/bin/runc; rm -rf /", "/usr/bin/python3"), ("/usr/bin/runc", "python3")):
        with pytest.raises(ValueError):
            lazy.wrapper_text(*bad)


def test_lazy_problem_names_what_is_missing(tmp_path):
    assert "needs Podman" in lazy.lazy_problem("docker", "runc")
    assert "runtime runc, not crun" in lazy.lazy_problem("podman", "crun")
    assert "not installed" in lazy.lazy_problem("podman", "runc", wrapper=str(tmp_path / "w"), dropin=str(tmp_path / "d"))


def test_stop_fill_ends_a_daemon_whose_restore_never_came(tmp_path):
    daemon = subprocess.Popen(["sleep", "60"])
    (tmp_path / (CID + ".pid")).write_text("%d\n" % daemon.pid)
    lazy.stop_fill(CID, str(tmp_path))
    assert daemon.wait(timeout=10) == -9
    lazy.stop_fill(CID, str(tmp_path))  # gone already: nothing to do
    lazy.stop_fill("cd" * 32, str(tmp_path))  # never started
