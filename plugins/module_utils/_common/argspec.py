# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument specs built from shared pieces: an ``ArgumentSpec`` is a module's options with their rules
(required_if, required_one_of, ...). Pieces (the engine, the SSH target, the window's run) are merged,
changed and narrowed into new specs, never edited in place, and a module or an action plugin is made
from the result (``create_module``, ``validate_kwargs``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["ArgumentSpec"]

RULES = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


class ArgumentSpec:
    """OPTIONS (an Ansible argument spec) and RULES (mutually_exclusive, required_if, ...)."""

    def __init__(self, options=None, **rules):
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            raise ValueError("unknown argument spec rules: %s" % ", ".join(unknown))
        self.options = {k: dict(v) for k, v in (options or {}).items()}
        self.rules = {k: (dict(v) if k == "required_by" else list(v)) for k, v in rules.items() if v}

    def merge(self, *others, **options):
        """A spec with the options and rules of this one and of OTHERS, and OPTIONS added (later wins)."""
        out = ArgumentSpec(self.options, **self.rules)
        for other in others + (ArgumentSpec(options),):
            out.options.update({k: dict(v) for k, v in other.options.items()})
            for rule, value in other.rules.items():
                if rule == "required_by":
                    out.rules.setdefault(rule, {}).update(value)
                else:
                    out.rules[rule] = out.rules.get(rule, []) + list(value)
        return out

    def change(self, **changes):
        """A spec with some options changed (e.g. given other defaults); each must exist."""
        out = ArgumentSpec(self.options, **self.rules)
        for name, change in changes.items():
            out.options[name].update(change)
        return out

    def without(self, *names):
        """A spec without the options NAMES (and without the rules that name them)."""
        out = ArgumentSpec({k: v for k, v in self.options.items() if k not in names})
        for rule, value in self.rules.items():
            if rule == "required_by":
                out.rules[rule] = {k: v for k, v in value.items() if k not in names}
            else:
                out.rules[rule] = [r for r in value if not set(names) & set(_names_in(r))]
        return out

    def validate_kwargs(self):
        """Keyword arguments for AnsibleModule or an action's validate_argument_spec."""
        return dict(self.rules, argument_spec=self.options)

    def create_module(self, **kwargs):
        """The AnsibleModule of this spec (KWARGS: supports_check_mode, ...)."""
        from ansible.module_utils.basic import AnsibleModule
        return AnsibleModule(**dict(self.validate_kwargs(), **kwargs))


def _names_in(rule):
    """The option names a rule entry speaks of: ("a", "b"), or ("a", value, ("b", "c")[, any])."""
    if len(rule) >= 3 and isinstance(rule[2], (list, tuple)):
        return [rule[0]] + list(rule[2])
    return list(rule)
