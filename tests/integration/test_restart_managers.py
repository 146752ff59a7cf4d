"""Containers that something else restarts (issue 20): what the engines really do when a checkpoint stops
a container with a restart policy, and that stacklift never leaves two live copies because of it."""

import time

import pytest

from labhosts import run_module

REDIS = "localhost/stacklift/redis:latest"
ARCHIVE_DIR = "/var/lib/stacklift/restarttest"


def status(host, engine, name):
    return host.out("%s inspect --format '{{.State.Status}}' %s" % (engine, name))


@pytest.fixture
def on_node3(node3):
    def clean():
        node3.run("podman rm -f -t 0 rp-podman >/dev/null 2>&1; docker rm -f rp-docker rp-bare >/dev/null 2>&1; "
                  "rm -rf %s" % ARCHIVE_DIR, check=False)
    clean()
    yield node3
    clean()


def test_docker_restarts_a_checkpointed_container_so_stacklift_refuses_its_restart_policy(on_node3):
    host = on_node3
    # What Docker does (26.1): the checkpoint stops the container, its restart policy starts it afresh.
    host.out("docker run -d --name rp-bare --restart=always %s" % REDIS)
    time.sleep(1)
    host.out("docker checkpoint create rp-bare cp1")
    time.sleep(5)
    assert status(host, "docker", "rp-bare") == "running"  # a second life, without the checkpointed state
    # stacklift refuses it before anything is frozen, saying what to do instead.
    host.out("docker run -d --name rp-docker --restart=unless-stopped %s" % REDIS)
    args = {"name": ["rp-docker"], "engine": "docker", "archive_dir": ARCHIVE_DIR}
    result, failed = run_module("node3", "container_checkpoint", args)
    assert failed and "restart policy unless-stopped: Docker starts it afresh" in result["msg"], result
    assert "docker update --restart=no rp-docker" in result["msg"]
    assert status(host, "docker", "rp-docker") == "running"  # never frozen
    assert host.out("ls %s 2>/dev/null | wc -l" % ARCHIVE_DIR) == "0"


def test_podman_leaves_a_checkpointed_container_with_a_restart_policy_stopped(on_node3):
    host = on_node3
    host.out("podman run -d --name rp-podman --restart=always %s" % REDIS)
    time.sleep(1)
    args = {"name": ["rp-podman"], "archive_dir": ARCHIVE_DIR, "keep": True}
    result, failed = run_module("node3", "container_checkpoint", args)
    assert not failed, result
    time.sleep(5)
    assert status(host, "podman", "rp-podman") == "exited"  # Podman 5.4: no second copy
