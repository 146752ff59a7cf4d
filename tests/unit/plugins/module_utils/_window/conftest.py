"""What every window test needs: a host with every capability."""


import pytest

from ansible_collections.stacklift.migrate.plugins.module_utils._container import checkpoint as checkpointing


@pytest.fixture(autouse=True)
def full_capabilities(monkeypatch):
    monkeypatch.setattr(checkpointing, "cap_bounding_set", lambda: int("1ffffffffff", 16))
