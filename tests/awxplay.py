"""examples/awx/controller.yml read as AWX would receive it: each awx.awx call with its arguments templated
as Ansible templates them (loops included). The job templates and credential types the tests use come
from here, so the tests run what the operator's AWX gets."""

from pathlib import Path

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = REPO / "examples" / "awx" / "controller.yml"
PLAY = DataLoader().load_from_file(str(PLAYBOOK), trusted_as_template=True)[0]
# what an operator gives on the command line: the image, and the credentials' secrets (made-up ones)
VARS = dict(PLAY["vars"], stacklift_awx_ee_image="registry.invalid/stacklift-ee:0.3.0",
            stacklift_awx_machine_key="-----BEGIN OPENSSH PRIVATE KEY-----\nmachine\n-----END OPENSSH PRIVATE KEY-----\n",
            stacklift_awx_vault_password="vault", stacklift_awx_host_to_host_key="host to host")


def calls():
    """[(task name, awx.awx module's short name, its arguments templated)]"""
    out = []
    for task in PLAY["tasks"]:
        module = next(k for k in task if "." in k)
        if not module.startswith("awx.awx."):
            continue
        items = Templar(loader=DataLoader(), variables=VARS).template(task["loop"]) if "loop" in task else [None]
        for item in items:
            templar = Templar(loader=DataLoader(), variables=dict(VARS, item=item))
            out.append((task["name"], module.split(".")[-1], templar.template(task[module])))
    return out


CALLS = calls()


def made(module):
    """{name: arguments} of the objects the play makes with MODULE (job_template, credential_type, ...)."""
    return {args["name"]: args for _task, m, args in CALLS if m == module}


def template(name):
    return made("job_template")[name]
