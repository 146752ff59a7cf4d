"""A stand-in for the engine's commands, the one thing unit tests fake."""

import json


class FakeRunner:
    """Stands in for the engine's commands: answers by the first words of argv, records each call."""

    def __init__(self, answers=None):
        self.answers = dict(answers or {})
        self.calls = []

    def __call__(self, argv, data=None, **kw):
        self.calls.append(list(argv))
        words = list(argv)
        words[0] = words[0].rsplit("/", 1)[-1]
        for n in range(len(words), 0, -1):
            key = " ".join(words[:n])
            if key in self.answers:
                ans = self.answers[key]
                ans = ans(argv) if callable(ans) else ans
                if isinstance(ans, (dict, list)):
                    return 0, json.dumps(ans), ""
                return ans
        raise AssertionError("unexpected command: %s" % " ".join(argv))

    def commands(self, prefix):
        return [c for c in self.calls if " ".join([c[0].rsplit("/", 1)[-1]] + c[1:]).startswith(prefix)]
