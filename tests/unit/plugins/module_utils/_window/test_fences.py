"""The migration report built from module results, and the quiesce checks."""


from ansible_collections.stacklift.migrate.plugins.module_utils._window import fences


def test_fence_drops_everything_but_loopback():
    rules = fences.FENCE_RULES
    assert "table inet stacklift_fence" in rules and rules.count("policy drop") == 2
    assert 'iifname "lo" accept' in rules and 'oifname "lo" accept' in rules
