"""Every module's documentation as ansible-doc and the docsite render it: each return value has a
sample (or, for a dict or list of dicts, what it contains, each with a sample), of its declared type."""

import importlib
import pkgutil

import pytest
import yaml

from ansible_collections.stacklift.migrate.plugins import modules

MODULES = sorted(m.name for m in pkgutil.iter_modules(modules.__path__))
TYPES = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict, "list": list}


def fields(ret, prefix=""):
    for name, spec in ret.items():
        yield prefix + name, spec
        if spec.get("contains"):
            yield from fields(spec["contains"], prefix + name + ".")


@pytest.mark.parametrize("name", MODULES)
def test_every_return_value_has_a_sample_of_its_type(name):
    mod = importlib.import_module("ansible_collections.stacklift.migrate.plugins.modules." + name)
    ret = yaml.safe_load(mod.RETURN) or {}
    lacking, wrong = [], []
    for path, spec in fields(ret):
        if "sample" not in spec:
            if not spec.get("contains"):
                lacking.append(path)
            continue
        sample = spec["sample"]
        if sample is not None and not isinstance(sample, TYPES[spec["type"]]):
            wrong.append("%s: %r is no %s" % (path, sample, spec["type"]))
        if spec["type"] == "list" and spec.get("elements") in TYPES and sample:
            wrong += ["%s: element %r is no %s" % (path, e, spec["elements"]) for e in sample
                      if not isinstance(e, TYPES[spec["elements"]])]
    assert not lacking and not wrong, (lacking, wrong)


@pytest.mark.parametrize("name", MODULES)
def test_documentation_and_examples_are_yaml(name):
    mod = importlib.import_module("ansible_collections.stacklift.migrate.plugins.modules." + name)
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["module"] == name and doc["options"] is not None
    assert isinstance(yaml.safe_load(mod.EXAMPLES), list)
