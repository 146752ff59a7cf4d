#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: fleet_report
short_description: Write the report of a fleet migration
version_added: 0.1.0
description:
  - Writes C(fleet-STAMP.json), C(.txt) and C(.svg) (a timeline, one row a stack) beside the stacks'
    own migration reports, from each stack's outcome and its own report.
  - Runs on the controller (C(delegate_to=localhost)).
author:
  - stacklift developers (@stacklift)
extends_documentation_fragment:
  - stacklift.migrate.attributes
  - ansible.builtin.action_common_attributes
options:
  stacks:
    description:
      - Each stack's C(stack), C(source), C(target), C(outcome) (V(migrated), V(rolled_back),
        V(failed), V(unplaced), V(skipped)), and optionally C(report) (its migration report's path)
        and C(error).
    type: list
    elements: dict
  started:
    description: When the fleet run started, epoch seconds; required with O(stacks).
    type: float
  parts:
    description:
      - Instead of O(stacks), the fleet reports of jobs that each moved part of the fleet at once (the
        slices of a drain, in an AWX workflow the artifacts C(stacklift_fleet_part_*) of its parallel
        nodes), merged into one report from the first start to the last end.
      - A stack found in two parts fails the merge, naming it.
    type: list
    elements: dict
    version_added: 0.3.0
  report_dir:
    description: Where to write the report.
    type: path
    required: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Report the fleet run
  stacklift.migrate.fleet_report:
    stacks: [{stack: shop, source: node1, target: node2, outcome: migrated, report: /r/shop-1.json}]
    started: "{{ fleet_started }}"
    report_dir: /r
  delegate_to: localhost

- name: One report of the slices of a drain that ran at once
  stacklift.migrate.fleet_report:
    parts: "{{ query('ansible.builtin.vars', *query('ansible.builtin.varnames', '^stacklift_fleet_part_')) }}"
    report_dir: /r
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The report's JSON file (its .txt and .svg beside it).
  returned: when not in check mode
  type: str
  sample: "/srv/stacklift/reports/fleet-20261128T101515.json"
summary:
  description: The report as text.
  returned: always
  type: str
  sample: "stacklift fleet migration: 3 stacks, 3 migrated in 36.7 s\n"
ok:
  description: Whether every stack moved (or had nothing to move).
  returned: always
  type: bool
  sample: true
counts:
  description: How many stacks ended each way.
  returned: always
  type: dict
  sample: {"migrated": 3, "rolled_back": 0, "failed": 0, "unplaced": 0, "skipped": 0}
report:
  description: The whole report.
  returned: always
  type: dict
  sample:
    ok: true
    total_s: 36.7
    max_downtime_s: 6.1
    stacks:
    - stack: shop
      source: node1
      target: node2
      outcome: migrated
      downtime_s: 6.1
"""

import time

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._common.errors import StackliftError
from ansible_collections.stacklift.migrate.plugins.module_utils._stack import fleet


def main():
    module = ArgumentSpec(dict(
        stacks=dict(type="list", elements="dict"),
        started=dict(type="float"),
        parts=dict(type="list", elements="dict"),
        report_dir=dict(type="path", required=True),
    ), required_one_of=[("stacks", "parts")], mutually_exclusive=[("stacks", "parts")],
        required_by={"stacks": ("started",)}).create_module(supports_check_mode=True)
    try:
        report = fleet.merge(module.params["parts"]) if module.params["parts"] is not None else from_stacks(module.params)
    except StackliftError as e:
        module.fail_json(msg=str(e))
    result = dict(changed=not module.check_mode, summary=fleet.summary(report), ok=report["ok"],
                  counts=report["counts"], report=report)
    if not module.check_mode:
        result["path"] = fleet.write(report, module.params["report_dir"])
    module.exit_json(**result)


def from_stacks(params):
    rows = []
    for s in params["stacks"]:
        if s.get("outcome") not in fleet.OUTCOMES:
            raise StackliftError("stack %r: outcome must be one of %s, not %r"
                                 % (s.get("stack"), ", ".join(fleet.OUTCOMES), s.get("outcome")))
        rows.append(fleet.stack_entry(s["stack"], s.get("source"), s.get("target"), s["outcome"],
                                      report_path=s.get("report"), error=s.get("error")))
    return fleet.build(rows, params["started"], time.time())


if __name__ == "__main__":
    main()
