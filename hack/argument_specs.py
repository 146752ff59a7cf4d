"""Write each role's meta/argument_specs.yml from the collection's own specs (or check them).

The stack description's options come from plugins/module_utils/stack.py (STACK_OPTIONS, the spec
stack_plan checks with), their descriptions from the modules' documentation, and the settings'
descriptions from the comments in roles/common/defaults/main.yml. So the roles' specs, the
modules and the preflight never disagree.

    python hack/argument_specs.py          # write
    python hack/argument_specs.py --check  # exit 1 when a file is out of date
"""

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / ".cache" / "collections"))

from ansible_collections.stacklift.migrate.plugins.module_utils._stack import description as stack  # noqa: E402
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.base import ENGINE_CHOICES  # noqa: E402
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.lazy import MEMORY_MODES  # noqa: E402
from ansible_collections.stacklift.migrate.plugins.modules import service_probe  # noqa: E402

ROLES = {
    "migrate_stack": "Migrate a stack: preflight, quiesce, fence, checkpoint, transfer, restore, commit or roll back.",
    "preflight": "Check the stack description and both sides of the migration before anything is touched.",
    "checkpoint_stack": "Quiesce, fence and checkpoint a stack's services on their sources, and send the archives.",
    "restore_stack": "Restore a stack's services on their targets, tier by tier, each tier ready before the next.",
    "common": "Settings shared by the stacklift roles.",
}
# What each role does, at more length (ansible-doc and the docsite show it under the short description).
DESCRIPTIONS = {
    "migrate_stack": [
        "The whole runbook of one stack's migration, on the controller: the stack's lock and journal, the preflight, "
        "the hosts' window (quiesce, fence, checkpoint bottom-up, transfer, restore dependency-first, each tier gated "
        "on readiness), the commit, the traffic switch and the source's clean-up; on any failure before the commit, "
        "the rollback to the source.",
        "A run interrupted anywhere is finished or rolled back by the next run, from the journal.",
    ],
    "preflight": [
        "Checks the stack description, the hosts' engines, CRIU, networks, images, disk and memory, and the SSH "
        "path from each source to its targets, listing every problem at once; nothing is frozen or changed but "
        "the set-up a migration needs (the runtime wrapper for lazy memory, the targets' host keys).",
    ],
    "checkpoint_stack": [
        "Starts each source host's window call, which quiesces, fences the whole stack at once, checkpoints its "
        "services bottom-up and streams the archives to the targets; used by migrate_stack and by "
        "playbooks/checkpoint_stack.yml.",
    ],
    "restore_stack": [
        "Starts each target host's window call, which restores the services in dependency order, each tier "
        "ready (its probe) before the next, and holds them fenced until the commit.",
    ],
    "common": [
        "The defaults and the argument spec of every setting the other roles take; its by_name tasks take a "
        "stack by name from the stacks inventory (an AWX survey's answer).",
    ],
}
# Types of the settings in roles/common/defaults/main.yml (their comments are their descriptions).
SETTINGS = {
    "stacklift_archive_dir": dict(type="path"),
    "stacklift_engine": dict(type="str", choices=ENGINE_CHOICES),
    "stacklift_ssh_key_on_host": dict(type="path"),
    "stacklift_ssh_private_key": dict(type="str", no_log=True),
    "stacklift_host_key_checking": dict(type="str", choices=["strict", "accept_new", "ignore"]),
    "stacklift_known_hosts_file": dict(type="path"),
    "stacklift_encryption_key": dict(type="str", no_log=True),
    "stacklift_quiesce_timeout": dict(type="float"),
    "stacklift_probe_timeout": dict(type="float"),
    "stacklift_probe_stable_for": dict(type="float"),
    "stacklift_memory": dict(type="str", choices=list(MEMORY_MODES)),
    "stacklift_compression": dict(type="str", choices=["auto", "zstd", "gzip", "none"]),
    "stacklift_discover_depends_on": dict(type="bool"),
    "stacklift_cleanup_source": dict(type="bool"),
    "stacklift_keep_archives": dict(type="bool"),
    "stacklift_traffic_switch_tasks": dict(type="str"),
    "stacklift_traffic_switch_at": dict(type="str", choices=["commit", "cut"]),
    "stacklift_report_dir": dict(type="path"),
    "stacklift_host_report_dir": dict(type="str"),
    "stacklift_journal_dir": dict(type="path"),
    "stacklift_window_timeout": dict(type="int"),
    "stacklift_window_nice": dict(type="int"),
    "stacklift_progress_after": dict(type="float"),
    "stacklift_fleet_windows": dict(type="int"),
    "stacklift_stack_name": dict(type="str"),
    "stacklift_target_host": dict(type="str"),
}
STACK_DOC = {
    "name": "Name of the stack: letters, digits, C(_), C(.) and C(-). It names the journal, reports and fences.",
    "source": "Inventory name of the host the stack runs on (a service may override it).",
    "target": "Inventory name of the host the stack moves to (a service may override it).",
    "networks": "The stack's networks; the target gets each with the same subnet, so addresses are kept.",
    "networks.name": "Name of the network.",
    "networks.subnet": "Its subnet (default: the source's).",
    "services": "The stack's services; each moves with its container's memory, files and connections.",
    "services.name": "Name of the service (what C(depends_on) refers to).",
    "services.container": "Its container on the source (default: the service's name).",
    "services.source": "Host it runs on, when not the stack's.",
    "services.target": "Host it moves to, when not the stack's.",
    "services.depends_on": "Services it depends on: they are checkpointed and restored in a lower tier, before it.",
    "services.probe": "How readiness is probed after the restore: the options of M(stacklift.migrate.service_probe) "
                      "(C(type) at least; default a tcp probe).",
    "services.quiesce": "How the service is quiesced before the fence: a method (V(none), V(postgres_idle), "
                        "V(http_drain), V(connections_zero)) or a mapping of M(stacklift.migrate.service_quiesce)'s "
                        "options.",
    "services.tcp": "V(established) keeps open TCP connections through the move; V(close) drops them.",
    "services.memory": "How its memory crosses (default: the stack's C(memory)): V(eager), V(lazy) or V(auto).",
    "memory": "How its services' memory crosses (default: C(stacklift_memory)): V(eager) restores all of it before "
              "a process runs again; V(lazy) fills it in afterwards (Podman targets); V(precopy+lazy) also pre-dumps it "
              "before the fence (kernels with soft-dirty); V(auto) takes the fastest the hosts can.",
}


SERVICE = "stacklift_stack.services[]."


def role_refs(text):
    """service_probe's option references as the role's: O(probe.X) and O(container) are a service's."""
    return re.sub(r"O\((probe\.[\w.]+|container)\)", lambda m: "O(%s%s)" % (SERVICE, m.group(1)), text)


def module_docs():
    docs = yaml.safe_load(service_probe.DOCUMENTATION)["options"]["probe"]["suboptions"]
    for doc in docs.values():
        doc["description"] = [role_refs(d) for d in doc["description"]] if isinstance(doc["description"], list) \
            else role_refs(doc["description"])
    return docs


def described(options, prefix, probe_docs):
    out = {}
    for key in sorted(options):
        spec = dict(options[key])
        entry = {"description": STACK_DOC.get(prefix + key) or probe_docs[key]["description"]}
        entry["type"] = spec["type"]
        for field in ("required", "choices", "elements", "no_log"):
            if spec.get(field):
                entry[field] = spec[field]
        if spec.get("options"):
            inner = prefix + key + "."
            entry["options"] = described(spec["options"], inner if key != "probe" else "", probe_docs)
        out[key] = entry
    return out


def settings_docs():
    text = (REPO / "roles" / "common" / "defaults" / "main.yml").read_text()
    docs, comment = {}, []
    for line in text.splitlines():
        if line.startswith("# ") and not line.startswith("# Settings shared"):
            comment.append(line[2:].strip())
        elif re.match(r"^stacklift_\w+:", line):
            docs[line.split(":", 1)[0]] = " ".join(comment)
            comment = []
    defaults = yaml.safe_load(text)
    return docs, defaults


def role_spec(role, probe_docs):
    docs, defaults = settings_docs()
    options = {}
    if role != "common":
        options["stacklift_stack"] = {
            "description": "The stack to migrate: its name, hosts, networks and services.",
            "type": "dict", "required": True,
            "options": described(stack.STACK_OPTIONS, "", probe_docs)}
    for name, spec in SETTINGS.items():
        entry = {"description": docs[name] or name}
        entry.update(spec)
        value = defaults[name]
        if not (isinstance(value, str) and "{{" in value):
            entry["default"] = value
        options[name] = entry
    return {"argument_specs": {"main": {"short_description": ROLES[role], "description": DESCRIPTIONS[role],
                                        "options": options}}}


class IndentedDumper(yaml.SafeDumper):
    """Lists indented under their key, as yamllint and ansible-lint want them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def render(role, probe_docs):
    head = ("---\n# Generated by hack/argument_specs.py from the collection's specs; do not edit.\n"
            "# ansible-doc -t role stacklift.migrate.%s\n" % role)
    return head + yaml.dump(role_spec(role, probe_docs), Dumper=IndentedDumper, sort_keys=False, width=110)


def main(check):
    probe_docs = module_docs()
    stale = []
    for role in ROLES:
        path = REPO / "roles" / role / "meta" / "argument_specs.yml"
        text = render(role, probe_docs)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(str(path.relative_to(REPO)))
        if not check:
            path.write_text(text)
    if check and stale:
        print("out of date (run python hack/argument_specs.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
