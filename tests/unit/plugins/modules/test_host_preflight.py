"""host_preflight's checks of the window's tools, with only the host's PATH faked."""

from ansible_collections.stacklift.migrate.plugins.modules import host_preflight


class Module:
    def __init__(self, missing, encrypted=False):
        self.missing = missing
        self.params = {"encrypted": encrypted}

    def get_bin_path(self, name):
        return None if name in self.missing else "/usr/bin/" + name


def test_every_missing_tool_is_named_at_once():
    assert host_preflight.tool_problems(Module(()), "source") == []
    assert host_preflight.tool_problems(Module(("zstd",)), "target") == [
        "the migration needs zstd on this host, which is not on its PATH"]
    assert host_preflight.tool_problems(Module(("nft", "nsenter")), "source") == [
        "the migration needs nft, nsenter on this host, which are not on its PATH"]


def test_encrypted_archives_need_cryptography_on_the_host(monkeypatch):
    from ansible_collections.stacklift.migrate.plugins.module_utils._archive import encryption as crypt
    assert host_preflight.tool_problems(Module((), encrypted=True), "target") == []
    monkeypatch.setattr(crypt, "HAS_CRYPTOGRAPHY", False)
    assert host_preflight.tool_problems(Module((), encrypted=True), "target") == [
        "encrypted archives need the Python library cryptography on this host (python3-cryptography)"]
    assert host_preflight.tool_problems(Module(()), "target") == []


class Source:
    def __init__(self, memory, tracks):
        self.params = {"memory": memory}
        self.tracks = tracks

    def run_command(self, argv):
        assert argv == ["criu", "check", "--feature", "mem_dirty_track"]
        return (0, "", "") if self.tracks else (1, "", "Warn  (criu/cr-check.c:824): Dirty tracking is OFF.\n")


def test_precopy_is_a_problem_only_where_asked_for_and_the_source_cannot():
    podman = {"engine": "podman", "runtime": "runc"}
    assert host_preflight.precopy_side(Source(["precopy+lazy"], True), podman) == (None, [])
    why, problems = host_preflight.precopy_side(Source(["precopy+lazy", "eager"], False), podman)
    assert why.startswith("this kernel does not track the pages written to") and problems == [
        "memory precopy+lazy: %s; lazy moves the pages after the restore without it" % why]
    assert host_preflight.precopy_side(Source(["auto"], False), podman) == (why, [])  # auto: lazy, no pre-copy
    why, problems = host_preflight.precopy_side(Source(["precopy+lazy"], True), {"engine": "docker", "runtime": "runc"})
    assert "Docker has no pre-dump" in why and len(problems) == 1
