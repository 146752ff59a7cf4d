# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tree.py: a container's changed files staged, what changed since sent by block, and put into a root."""

import io
import json
import os
import stat
import subprocess
import sys

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import tree

MiB = 1 << 20


def stream(upper, previous, mapped=()):
    """The records of tree.changes as the receiver reads them, the data records, and the new entries."""
    entries = {}
    out = io.BytesIO()
    data = []
    for record, payload in tree.changes(str(upper), previous, mapped=mapped, out=entries):
        out.write(tree.encode(record, payload))
        if record["op"] == "data":
            data.append((record["path"], record["offset"]))
    out.write(tree.encode({"op": "end", "entries": entries}))
    out.seek(0)
    return out, data, entries


def old_enough(entries):
    """ENTRIES as if read long after each file's last change (the margin passed)."""
    for e in entries.values():
        if "read_ns" in e:
            e["read_ns"] = max(e["mtime_ns"], e["ctime_ns"]) + tree.MARGIN_NS + 1
    return entries


def make_upper(upper):
    (upper / "var/lib/db").mkdir(parents=True)
    (upper / "var/lib/db/table").write_bytes(b"a" * (3 * MiB) + b"tail")
    (upper / "var/lib/db/wal").write_bytes(b"w" * 1000)
    (upper / "etc").mkdir()
    os.symlink("../var/lib/db", str(upper / "etc/db"))
    os.mknod(str(upper / "etc/gone"), stat.S_IFCHR | 0o600, 0)  # overlay's whiteout: the image's file deleted


def test_a_staged_tree_then_its_changes_by_block_end_up_in_the_root_as_in_the_upper_directory(tmp_path):
    upper, stage, root = tmp_path / "upper", tmp_path / "stage", tmp_path / "root"
    make_upper(upper)
    (root / "etc").mkdir(parents=True)
    (root / "etc/gone").write_text("from the image")
    (root / "etc/kept").write_text("from the image")
    first, data, entries = stream(upper, {})
    assert tree.receive(first, str(stage)) == 3 * MiB + 4 + 1000
    assert len([d for d in data if d[0] == "var/lib/db/table"]) == 4
    # the service writes on: one block of the table, the WAL grows, a file goes, one comes, a mode changes
    with open(str(upper / "var/lib/db/table"), "r+b") as f:
        f.seek(MiB + 10)
        f.write(b"B")
    (upper / "var/lib/db/wal").write_bytes(b"w" * 2000)
    os.unlink(str(upper / "etc/db"))
    (upper / "var/lib/db/new").write_bytes(b"n")
    os.chmod(str(upper / "var/lib/db"), 0o700)
    second, data, entries = stream(upper, old_enough(entries))
    tree.receive(second, str(stage))
    assert sorted(data) == [("var/lib/db/new", 0), ("var/lib/db/table", MiB), ("var/lib/db/wal", 0)]
    assert tree.apply(str(stage), str(root), tree.digest_of(entries)) == len(entries)
    assert (root / "var/lib/db/table").read_bytes() == (upper / "var/lib/db/table").read_bytes()
    assert (root / "var/lib/db/wal").read_bytes() == b"w" * 2000 and (root / "var/lib/db/new").read_bytes() == b"n"
    assert not os.path.lexists(str(root / "etc/db")) and not os.path.exists(str(root / "etc/gone"))
    assert (root / "etc/kept").read_text() == "from the image"
    assert stat.S_IMODE(os.stat(str(root / "var/lib/db")).st_mode) == 0o700
    assert os.stat(str(root / "var/lib/db/table")).st_mtime_ns == os.stat(str(upper / "var/lib/db/table")).st_mtime_ns


def test_a_file_read_too_soon_after_its_change_or_mapped_shared_is_read_again_whatever_its_status(tmp_path):
    upper = tmp_path / "upper"
    make_upper(upper)
    _out, _data, entries = stream(upper, {})
    # What a write the status cannot show leaves: the copy's first block differs, the file's status does not.
    for e in entries.values():
        if e["kind"] == "file":
            e["blocks"][0] = "0" * 64
    _out, data, _after = stream(upper, entries)  # read within the margin of their change: read again
    assert sorted(data) == [("var/lib/db/table", 0), ("var/lib/db/wal", 0)]
    entries = old_enough(entries)
    _out, data, _after = stream(upper, entries)  # read long after their change, status the same: trusted
    assert data == []
    _out, data, _after = stream(upper, entries, mapped={"var/lib/db/table"})  # mapped shared and writable
    assert data == [("var/lib/db/table", 0)]


def test_a_block_damaged_on_its_way_is_not_written_and_apply_refuses_a_short_file_or_a_foreign_manifest(tmp_path):
    upper, stage, root = tmp_path / "upper", tmp_path / "stage", tmp_path / "root"
    make_upper(upper)
    root.mkdir()
    out, _data, entries = stream(upper, {})
    damaged = out.getvalue().replace(b"w" * 1000, b"w" * 999 + b"x")
    with pytest.raises(tree.TreeError, match="a block of .*wal at 0 arrived damaged"):
        tree.receive(io.BytesIO(damaged), str(stage))
    assert not (stage / tree.MANIFEST).exists()  # no manifest: nothing of it can be applied
    tree.receive(out, str(stage))
    with pytest.raises(tree.TreeError, match="not those the archive was made with"):
        tree.apply(str(stage), str(root), "0" * 64)
    with open(str(stage / tree.TREE / "var/lib/db/wal"), "r+b") as f:
        f.truncate(10)
    with pytest.raises(tree.TreeError, match="wal holds 10 bytes, its manifest says 1000"):
        tree.apply(str(stage), str(root), tree.digest_of(entries))
    assert not (root / "var/lib/db/wal").exists()


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "link/x"])
def test_the_receiver_refuses_a_path_that_leaves_its_tree(tmp_path, path):
    stage = tmp_path / "stage"
    (stage / tree.TREE).mkdir(parents=True)
    os.symlink(str(tmp_path), str(stage / tree.TREE / "link"))
    records = tree.encode({"op": "file", "path": path})
    with pytest.raises(tree.TreeError):
        tree.receive(io.BytesIO(records), str(stage))
    assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()


def test_an_opaque_directory_hides_what_the_image_had_there(tmp_path):
    upper, stage, root = tmp_path / "upper", tmp_path / "stage", tmp_path / "root"
    (upper / "data").mkdir(parents=True)
    (upper / "data/fresh").write_text("new")
    try:
        os.setxattr(str(upper / "data"), "trusted.overlay.opaque", b"y")
    except OSError as e:
        pytest.fail("this test needs root and trusted xattrs on %s: %s" % (tmp_path, e))
    (root / "data").mkdir(parents=True)
    (root / "data/old").write_text("from the image")
    out, _data, entries = stream(upper, {})
    assert entries["data"]["opaque"]
    tree.receive(out, str(stage))
    tree.apply(str(stage), str(root), tree.digest_of(entries))
    assert sorted(os.listdir(str(root / "data"))) == ["fresh"]


def test_the_helper_receives_on_stdin_and_applies_into_a_bundles_root_and_its_volumes_exactly(tmp_path):
    upper, stage, bundle, volume = tmp_path / "upper", tmp_path / "stage", tmp_path / "bundle", tmp_path / "vol"
    make_upper(upper)
    os.chmod(str(upper), 0o700)  # a data directory: its user's alone
    (bundle / "rootfs").mkdir(parents=True)
    (volume / "stale").mkdir(parents=True)  # a volume's directory holding what its source's does not
    os.chmod(str(volume), 0o755)
    (volume / "stale/old").write_text("gone after")
    (bundle / "config.json").write_text(json.dumps({"root": {"path": "rootfs"}, "mounts": [
        {"destination": "/var/lib/data", "source": str(volume), "type": "bind"}]}))
    out, _data, entries = stream(upper, {})
    helper = tree.__file__
    got = subprocess.run([sys.executable, helper, "receive", str(stage)], input=out.read(), capture_output=True,
                         check=True, timeout=60)
    assert json.loads(got.stdout)["written"] == 3 * MiB + 1004
    request = tmp_path / "request.json"
    request.write_text(json.dumps([{"stage": str(stage), "digest": tree.digest_of(entries), "into": "/"},
                                   {"stage": str(stage), "digest": tree.digest_of(entries), "into": "/var/lib/data",
                                    "exact": True}]))
    got = subprocess.run([sys.executable, helper, "apply", str(request), str(bundle)], capture_output=True,
                         check=True, timeout=60)
    assert json.loads(got.stdout)["applied"] == 2 * len(entries)
    assert (bundle / "rootfs/var/lib/db/wal").read_bytes() == b"w" * 1000
    assert (volume / "var/lib/db/wal").read_bytes() == b"w" * 1000 and not (volume / "stale").exists()
    assert stat.S_IMODE(os.stat(str(volume)).st_mode) == 0o700
    request.write_text(json.dumps([{"stage": str(stage), "digest": tree.digest_of(entries), "into": "/nowhere"}]))
    bad = subprocess.run([sys.executable, helper, "apply", str(request), str(bundle)], capture_output=True, timeout=60, check=False)
    assert bad.returncode == 1 and b"no directory mounted at /nowhere" in bad.stderr
    request.write_text(json.dumps([{"stage": str(stage), "digest": "1" * 64, "into": "/"}]))
    bad = subprocess.run([sys.executable, helper, "apply", str(request), str(bundle)], capture_output=True, timeout=60, check=False)
    assert bad.returncode == 1 and b"not those the archive was made with" in bad.stderr


def test_the_paths_a_process_maps_are_given_to_the_tree_they_lie_in():
    mapped = {"var/lib/pg/base/1", "etc/x", "var/lib/pgx/y"}
    assert tree.under(mapped, "/") == mapped
    assert tree.under(mapped, "/var/lib/pg") == {"base/1"}
