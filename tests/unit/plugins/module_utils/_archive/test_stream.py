"""The archive's stream: digests, and JSON members read within a bound."""

import io
import tarfile

import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._archive import facts
from ansible_collections.stacklift.migrate.plugins.module_utils._archive import stream as ar


def test_sha256_file(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"abc")
    assert ar.sha256_file(str(p)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_the_archive_reader_refuses_huge_or_broken_json_members(tmp_path):
    for name, data in (("huge.tar", b" " * (ar.MAX_JSON_MEMBER + 1)), ("bad.tar", b"{not json")):
        path = tmp_path / name
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo("config.dump")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        with pytest.raises(ar.ArchiveError, match="config.dump is"):
            facts.read_archive(str(path))


@pytest.mark.parametrize("link, compressor, ratio, chosen", [
    (110.0, 100.0, 0.5, "none"),   # a 1 Gbit/s LAN against one core's zstd: compressing costs more than it saves
    (40.0, 100.0, 0.5, "zstd"),    # a slower link: half the bytes to send pays for the compressor
    (60.0, 100.0, 0.95, "none"),   # data that hardly compresses
    (None, 100.0, 0.5, "zstd"),    # nothing measured: the default
    (500.0, None, None, "zstd"),
])
def test_compression_is_chosen_by_what_was_measured(link, compressor, ratio, chosen):
    assert ar.choose_compression(link, compressor, ratio) == chosen
