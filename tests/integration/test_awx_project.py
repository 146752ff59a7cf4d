"""What AWX and ansible-builder read of the project: the execution environment definition, the
collection's own requirements for it, and the job templates' surveys."""

import json
import os
import subprocess

import yaml

from labhosts import BIN, REPO

TEMPLATES = json.loads((REPO / "examples" / "awx" / "job_templates.json").read_text())["job_templates"]


def run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300, **kw)
    assert res.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(cmd), res.stdout, res.stderr)
    return res.stdout


def test_ansible_builder_accepts_the_definition_and_finds_the_collections_requirements(tmp_path):
    context = tmp_path / "context"
    run([str(BIN / "ansible-builder"), "create", "-f", str(REPO / "examples" / "awx" / "execution-environment.yml"),
         "-c", str(context)])
    files = [p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()]
    assert files, "no Containerfile in %s: %s" % (context, sorted(str(p) for p in context.rglob("*")))
    containerfile = files[0]
    assert "ansible-galaxy" in containerfile.read_text() and "EE_BASE_IMAGE" in containerfile.read_text()
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert [c["name"] for c in galaxy["collections"]] == ["https://github.com/stacklift/stacklift.migrate.git"]

    # The collection as Galaxy serves it (built, installed) declares its controller-side requirements
    # the standard way (meta/execution-environment.yml), which ansible-builder's introspection reads.
    # Away from the checkout's ansible.cfg (make exports it), whose collections path holds the checkout:
    # ansible-galaxy would find the collection installed there and install nothing.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tmp_path / "installed")
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(REPO)],
        cwd=str(tmp_path), env=env)
    tarball = next(tmp_path.glob("stacklift-migrate-*.tar.gz"))
    out = run([str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(tmp_path / "installed"), str(tarball)],
              cwd=str(tmp_path), env=env)
    assert (tmp_path / "installed" / "ansible_collections" / "stacklift" / "migrate" / "MANIFEST.json").exists(), out
    found = yaml.safe_load(run([str(BIN / "ansible-builder"), "introspect", "--sanitize", str(tmp_path / "installed")]))
    assert "jmespath>=1.0  # from collection stacklift.migrate" in found["python"]
    assert "openssh-client [platform:dpkg]  # from collection stacklift.migrate" in found["system"]


def role_options():
    out = {}
    for spec in REPO.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            out.update(entry.get("options") or {})
    return out


def test_every_survey_question_sets_a_documented_variable_with_a_valid_default():
    options = role_options()
    names = set()
    for tmpl in TEMPLATES:
        names.add(tmpl["name"])
        playbook = REPO / tmpl["playbook"]
        assert playbook.exists(), tmpl["playbook"]
        text = playbook.read_text()
        if "import_playbook" in text:
            text += (playbook.parent / yaml.safe_load(text)[0]["ansible.builtin.import_playbook"]).read_text()
        spec = tmpl["related"]["survey_spec"]["spec"]
        assert spec and tmpl["survey_enabled"]
        for q in spec:
            var = q["variable"]
            # A role's documented option, or a variable the playbook itself reads.
            assert var in options or var in text, (tmpl["name"], var)
            if q["type"] == "multiplechoice":
                assert q["default"] in q["choices"], q
            if q["type"] == "integer":
                assert q["min"] <= q["default"] <= q["max"], q
            if var in options and "choices" in options[var]:
                assert q.get("choices") and set(q["choices"]) <= set(options[var]["choices"]), q
    assert names == {"stacklift: preflight a stack", "stacklift: migrate a stack", "stacklift: roll back a stack",
                     "stacklift: drain a host"}


def test_the_custom_credential_types_inject_documented_secret_options_and_the_templates_use_them():
    options = role_options()
    types = json.loads((REPO / "examples" / "awx" / "credential_types.json").read_text())["credential_types"]
    by_name = {t["name"]: t for t in types}
    for t in types:
        fields = {f["id"]: f for f in t["inputs"]["fields"]}
        assert set(t["inputs"]["required"]) <= set(fields)
        for var, value in t["injectors"]["extra_vars"].items():
            # a secret goes only into an option the roles never log
            assert options[var].get("no_log") is True, var
            used = [f for f in fields if "{{ %s }}" % f in value]
            assert used and all(fields[f].get("secret") for f in used), (var, value)
    used = set()
    for tmpl in TEMPLATES:
        for cred in tmpl["related"]["credentials"]:
            if cred["credential_type"]["kind"] == "cloud":
                assert cred["credential_type"]["name"] in by_name, cred
                used.add(cred["credential_type"]["name"])
    assert used == set(by_name)
