"""examples/awx/controller.yml, checked offline against the awx.awx collection it calls (taken from the
pinned `ansible` wheel by `make collection`): every task's arguments, templated as Ansible templates them
(loops included), validated against the argument spec each awx.awx module builds in its main(); the
surveys against the roles' own argument specs; the workflows' nodes against the templates made."""

import importlib
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from awxplay import CALLS, PLAY, PLAYBOOK, REPO, made

BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / ".cache" / "collections"))

from ansible_collections.awx.awx.plugins.module_utils import controller_api  # noqa: E402


class Spec(Exception):
    """The argument spec (and its rules) an awx.awx module's main() passed to ControllerAPIModule."""


def module_spec(name, monkeypatch):
    def capture(self, argument_spec=None, **rules):
        raise Spec(argument_spec, rules)
    monkeypatch.setattr(controller_api.ControllerAPIModule, "__init__", capture)
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules." + name)
    with pytest.raises(Spec) as e:
        module.main()
    return e.value.args


@pytest.mark.parametrize("task,module,args", CALLS, ids=["%s-%d" % (c[1], i) for i, c in enumerate(CALLS)])
def test_every_call_is_valid_for_the_awx_collections_module(task, module, args, monkeypatch):
    spec, rules = module_spec(module, monkeypatch)
    kept = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")
    rules = {k: v for k, v in rules.items() if k in kept}
    result = ArgumentSpecValidator(spec, **rules).validate(args)
    assert not result.error_messages, "%s (%s): %s" % (task, module, result.error_messages)
    assert not result.unsupported_parameters


def test_the_play_makes_every_kind_of_object_an_operator_needs():
    kinds = {c[1] for c in CALLS}
    assert kinds == {"execution_environment", "credential_type", "credential", "project", "inventory",
                     "inventory_source", "job_template", "workflow_job_template"}
    # the credentials the templates name are the ones it makes, each only from a secret given, never logged
    credentials = made("credential")
    assert all(set(t["credentials"]) == set(credentials) for t in made("job_template").values())
    for task in PLAY["tasks"]:
        if "awx.awx.credential" in task:
            assert task["no_log"] is True and " is defined" in task["when"], task["name"]
    templates = [a for _task, m, a in CALLS if m == "job_template"]
    assert all(t["allow_simultaneous"] is False for t in templates)
    project = next(a for _task, m, a in CALLS if m == "project")
    # a release tag, not main: this release's
    assert project["scm_branch"] == PLAY["vars"]["stacklift_awx_version"] == yaml.safe_load(
        (REPO / "galaxy.yml").read_text())["version"]


def test_every_template_runs_a_playbook_of_the_project():
    for _task, module, args in CALLS:
        if module == "job_template":
            assert (REPO / args["playbook"]).is_file(), args["playbook"]


def role_options():
    """Every variable the roles' argument specs know, with its spec."""
    out = {}
    for spec in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            out.update(entry.get("options") or {})
    return out


# what each question's answer may set: text any string (a list the roles split), integer a number
SURVEY_TYPES = {"text": ("str", "raw", "list", "path"), "integer": ("int", "float"), "multiplechoice": ("bool", "str")}


def playbooks_of(args):
    """The playbooks a template (or a workflow's templates) runs, with those they import."""
    names = [args["playbook"]] if "playbook" in args else [
        t["playbook"] for t in made("job_template").values()
        if t["name"] in {n["unified_job_template"]["name"] for n in args["workflow_nodes"]}]
    text = ""
    for name in names:
        own = (REPO / name).read_text()
        text += own
        for play in yaml.safe_load(own):
            if "ansible.builtin.import_playbook" in play:
                text += (REPO / name).parent.joinpath(play["ansible.builtin.import_playbook"]).read_text()
    return text


def test_every_survey_question_sets_a_variable_the_roles_or_its_playbook_take_with_a_valid_default():
    known = role_options()
    asked = 0
    for _task, module, args in CALLS:
        for q in (args.get("survey_spec") or {}).get("spec") or []:
            asked += 1
            assert {"question_name", "variable", "type", "required", "default"} <= set(q), q
            if q["type"] == "multiplechoice":
                assert q["default"] in q["choices"], q
            if q["type"] == "integer":
                assert q["min"] <= q["default"] <= q["max"], q
            var = known.get(q["variable"])
            if var is None:  # a playbook's own variable (the host a drain empties)
                assert "{{ %s }}" % q["variable"] in playbooks_of(args), (args["name"], q["variable"])
                continue
            assert var.get("type", "str") in SURVEY_TYPES[q["type"]], (q["variable"], var)
            if "choices" in var:
                assert q.get("choices") and set(q["choices"]) <= set(var["choices"]), q
            if q["type"] == "multiplechoice" and var.get("type") == "bool":
                assert set(q["choices"]) == {"true", "false"}, q
    assert asked > 10


def test_the_credential_type_injects_its_secret_only_into_an_option_the_roles_never_log():
    options = role_options()
    types = made("credential_type")
    assert list(types) == ["stacklift host-to-host key"]
    for t in types.values():
        fields = {f["id"]: f for f in t["inputs"]["fields"]}
        assert set(t["inputs"]["required"]) <= set(fields)
        for var, value in t["injectors"]["extra_vars"].items():
            assert options[var].get("no_log") is True, var
            used = [f for f in fields if "{{ %s }}" % f in value]
            assert used and all(fields[f].get("secret") for f in used), (var, value)
    for tmpl in made("job_template").values():
        assert set(types) <= set(tmpl["credentials"]), tmpl["name"]


def test_the_migration_workflow_verifies_on_success_and_reports_the_rollback_on_failure():
    names = {a["name"] for _task, m, a in CALLS if m == "job_template"}
    flows = {a["name"]: a for _task, m, a in CALLS if m == "workflow_job_template"}
    nodes = {n["identifier"]: n for n in flows["stacklift: migrate a stack (workflow)"]["workflow_nodes"]}
    assert all(n["unified_job_template"]["name"] in names for n in nodes.values())
    assert nodes["preflight"]["related"]["success_nodes"] == [{"identifier": "migrate"}]
    assert nodes["migrate"]["related"] == {"success_nodes": [{"identifier": "verify"}],
                                           "failure_nodes": [{"identifier": "report"}]}


def test_the_sliced_drain_runs_each_slice_at_once_then_merges_them():
    flows = {a["name"]: a for _task, m, a in CALLS if m == "workflow_job_template"}
    nodes = flows["stacklift: drain a host in slices (workflow)"]["workflow_nodes"]
    slices = [n for n in nodes if n["identifier"].startswith("slice_")]
    assert [n["limit"] for n in slices] == ["stacks_slice_1_of_2", "stacks_slice_2_of_2"]
    assert all(n["related"] == {"always_nodes": [{"identifier": "summary"}]} for n in slices)
    summary = next(n for n in nodes if n["identifier"] == "summary")
    assert summary["all_parents_must_converge"] is True
    drain = next(a for _task, m, a in CALLS if m == "job_template" and a["name"] == "stacklift: drain a host")
    assert drain["ask_limit_on_launch"] is True  # else AWX drops a node's limit


def test_the_playbook_passes_syntax_check_and_ansible_lint():
    res = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", str(PLAYBOOK)], cwd=str(REPO),
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([str(BIN / "ansible-lint"), "--offline", "-q", str(PLAYBOOK)], cwd=str(REPO),
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
