"""Host checks: CRIU against the kernel, capabilities, process starts, Docker's CRIU options, restart managers."""

import os


from ansible_collections.stacklift.migrate.plugins.module_utils._checks import host as hostchecks


def test_criu_4_1_on_linux_6_18_is_refused_with_the_reason():
    problem = hostchecks.criu_kernel_problem((4, 1, 1), (6, 18, 44))
    assert "CRIU 4.1.1 cannot dump TCP sockets on Linux 6.18.44" in problem
    assert "4.2 or newer" in problem


def test_criu_4_2_on_linux_6_18_is_fine():
    assert hostchecks.criu_kernel_problem((4, 2, 1), (6, 18, 44)) is None


def test_old_criu_is_fine_on_an_old_kernel_but_not_ancient_criu():
    assert hostchecks.criu_kernel_problem((3, 17), (6, 1)) is None
    assert "older than" in hostchecks.criu_kernel_problem((3, 9), (5, 10))
    assert "not installed" in hostchecks.criu_kernel_problem(None, (6, 1))


def test_uid_problem_only_without_cap_sys_resource():
    full = int("000001ffffffffff", 16)
    missing = int("000001fffeffffff", 16)
    assert hostchecks.uid_problem(["postgres", "root"], full) is None
    assert hostchecks.uid_problem(["root", "0"], missing) is None
    assert hostchecks.uid_problem(["root", "?"], missing) is None  # a short-lived process, gone as podman looked
    problem = hostchecks.uid_problem(["root", "postgres", "www-data"], missing)
    assert "postgres, www-data" in problem and "CAP_SYS_RESOURCE" in problem


def test_cap_bounding_set_reads_proc_status(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapBnd:\t000001fffeffffff\n")
    assert hostchecks.cap_bounding_set(str(status)) == int("000001fffeffffff", 16)
    assert hostchecks.cap_bounding_set(str(tmp_path / "missing")) is None


def test_process_start_reads_the_start_after_the_command_name_whatever_it_holds(tmp_path):
    (tmp_path / "42").mkdir()
    # a command name with a space and a ")" of its own: the fields count from its last ")"
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["987654"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text("42 (post gres: a) b) %s\n" % " ".join(fields))
    assert hostchecks.process_start(42, str(tmp_path)) == 987654
    assert hostchecks.process_start(43, str(tmp_path)) is None
    # this very process, read from the real /proc, keeps its start
    mine = hostchecks.process_start(os.getpid())
    assert mine is not None and hostchecks.process_start(os.getpid()) == mine


def test_a_docker_daemon_without_experimental_is_told_how_to_fix_it():
    problems = hostchecks.docker_daemon_problems({"experimental": False, "storage_driver": "vfs"})
    assert "\"experimental\": true to /etc/docker/daemon.json" in problems[0]
    assert "vfs" in problems[1] and "overlay2" in problems[1]
    assert hostchecks.docker_daemon_problems({"experimental": True, "storage_driver": "overlay2"}) == []


def test_docker_containers_need_criu_options_in_their_config_file():
    files = {"/etc/criu/runc.conf": "# nothing\n", "/etc/criu/tcp.conf": "tcp-established  # keep them\n--file-locks\n"}

    def read(path):
        if path not in files:
            raise OSError(path)
        return files[path]

    plain = {"HostConfig": {}}
    annotated = {"HostConfig": {"Annotations": {"org.criu.config": "/etc/criu/tcp.conf"}}}
    problems = hostchecks.docker_container_problems("db", plain, tcp="established", read=read)
    assert len(problems) == 1 and "tcp-established" in problems[0] and "/etc/criu/runc.conf" in problems[0]
    assert hostchecks.docker_container_problems("db", annotated, tcp="established", file_locks=True, read=read) == []
    assert hostchecks.docker_container_problems("db", plain, read=read) == []
    missing = {"HostConfig": {"Annotations": {"org.criu.config": "/nope"}}}
    assert "tcp-established and file-locks" in hostchecks.docker_container_problems(
        "db", missing, tcp="established", file_locks=True, read=read)[0]
    rm = hostchecks.docker_container_problems("db", {"HostConfig": {"AutoRemove": True}}, tcp="close", read=read)
    assert "--rm" in rm[1] and "tcp: close" in rm[0]


def test_containers_something_else_would_restart_are_refused_with_what_to_do():
    """Issue 20: never two live copies. Docker restarts a checkpointed container under these policies (seen
    on the lab); a systemd unit may, and would at boot; a pod's container cannot be restored without its pod."""
    from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import manager_problems
    plain = {"HostConfig": {"RestartPolicy": {"Name": "no"}}, "Config": {"Labels": {}}, "Pod": ""}
    assert manager_problems("docker", "db", plain) == [] and manager_problems("podman", "db", plain) == []
    for policy in ("always", "unless-stopped", "on-failure"):
        c = dict(plain, HostConfig={"RestartPolicy": {"Name": policy}})
        assert "docker update --restart=no db" in manager_problems("docker", "db", c)[0]
        assert manager_problems("podman", "db", c) == []  # Podman 5.4 leaves it stopped (lab test)
    unit = dict(plain, Config={"Labels": {"PODMAN_SYSTEMD_UNIT": "container-db.service"}})
    assert "systemd unit container-db.service" in manager_problems("podman", "db", unit)[0]
    pod = dict(plain, Pod="0123456789abcdef", PodName="shop")
    assert manager_problems("podman", "db", pod) == ["container 'db' is in pod shop: stacklift moves containers, "
                                                     "not pods (the restore would need the pod on the target); run "
                                                     "its services as containers of their own"]


def test_a_memory_sample_reads_the_private_memory_of_a_process():
    payload = bytearray(b"stacklift-sample" * ((64 << 20) // 16))  # 64 MiB of this process's own memory
    sample = hostchecks.memory_sample(os.getpid(), limit=8 << 20)
    assert (1 << 20) <= len(sample) <= 8 << 20
    assert b"stacklift-sample" * 4 in sample and payload
    assert hostchecks.memory_sample(2 ** 22 + 12345) == b""  # no such process: no sample


def test_memory_scratch_is_a_tmpfs_with_room_and_memory_for_the_checkpoint_and_a_quarter_more(tmp_path):
    from ansible_collections.stacklift.migrate.plugins.module_utils._checks.host import free_bytes, memory_scratch
    proc, mount = tmp_path / "proc", tmp_path / "shm"
    proc.mkdir()
    mount.mkdir()
    (proc / "mounts").write_text("proc /proc proc rw 0 0\ntmpfs %s tmpfs rw,nosuid,nodev 0 0\n" % mount)
    (proc / "meminfo").write_text("MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n")
    room = min(free_bytes(str(mount)), 4000000 * 1024)
    assert memory_scratch(int(room / 1.25), str(mount), str(proc)) == str(mount / "stacklift-pages")
    assert memory_scratch(int(room / 1.25) + 1024, str(mount), str(proc)) == ""
    (proc / "mounts").write_text("/dev/vda %s ext4 rw 0 0\n" % mount)  # on disk: no
    assert memory_scratch(1, str(mount), str(proc)) == ""
    (proc / "mounts").unlink()
    assert memory_scratch(1, str(mount), str(proc)) == ""
