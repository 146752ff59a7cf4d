"""What checkpoint_info reads of an archive the tests make, without restoring it."""

import io
import tarfile

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import facts
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import stream as ar
from ansible_collections.stacklift.migrate.tests.unit.fakes import make_archive


def test_manifest_beside_the_archive_is_read(tmp_path):
    path = make_archive(tmp_path / "a.tar")
    ar.write_manifest(path, {"criu_version": "4.2.1", "kernel": "6.18.44", "sha256": "abc"})
    info = facts.read_archive(path)
    assert info["created_by"]["criu_version"] == "4.2.1" and info["manifest_sha256"] == "abc"
    assert oct((tmp_path / "a.tar.stacklift.json").stat().st_mode & 0o777) == "0o600"


def test_not_an_archive(tmp_path):
    p = tmp_path / "junk.tar"
    p.write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(ar.ArchiveError, match="not a readable checkpoint archive|not a Podman checkpoint"):
        facts.read_archive(str(p))


def test_a_tar_without_config_dump_is_not_a_checkpoint(tmp_path):
    p = tmp_path / "other.tar"
    with tarfile.open(p, "w") as tar:
        ti = tarfile.TarInfo("hello.txt")
        tar.addfile(ti, io.BytesIO(b""))
    with pytest.raises(ar.ArchiveError, match="no config.dump"):
        facts.read_archive(str(p))


def test_missing_archive(tmp_path):
    with pytest.raises(ar.ArchiveError, match="no checkpoint archive at"):
        facts.read_archive(str(tmp_path / "none.tar"))
