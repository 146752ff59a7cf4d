"""The roles act through the collection's modules only: no engine command, so stacklift_engine holds."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ENGINE_BINARIES = ("podman", "docker", "nerdctl", "crictl")


def tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from tasks(item)
    elif isinstance(node, dict):
        if any(k in node for k in ("name", "block")):
            yield node
        for key in ("block", "rescue", "always"):
            yield from tasks(node.get(key))


def test_no_role_task_runs_an_engine_command():
    found = []
    for path in sorted(REPO.glob("roles/*/*/*.yml")):
        if path.parent.name not in ("tasks", "handlers"):
            continue
        for task in tasks(yaml.safe_load(path.read_text()) or []):
            for action in ("ansible.builtin.command", "ansible.builtin.shell", "ansible.builtin.raw",
                           "command", "shell", "raw"):
                args = task.get(action)
                if args is None:
                    continue
                text = args if isinstance(args, str) else str(args.get("cmd") or args.get("argv") or args)
                if any(word in text.split() for word in ENGINE_BINARIES):
                    found.append("%s: %s" % (path.relative_to(REPO), task.get("name")))
    assert found == []
