#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: migration_report
short_description: Write the report of a stack migration
version_added: 0.1.0
description:
  - Turns what the migration's modules returned, phase by phase, into a report on the host it runs
    on (the controller, as the roles use it) - a JSON file with the stack, source, target,
    outcome, C(downtime_s) (first fence to last service ready) and each service's phases
    (quiesce, fence, checkpoint, transfer, restore, ready) with their start and end, and archive
    sizes; a text summary; and an SVG timeline.
author:
  - stacklift developers (@stacklift)
options:
  plan:
    description: The plan C(stacklift.migrate.stack_plan) returned.
    type: dict
    required: true
  phases:
    description: For each phase, the list of results its modules returned (loop results included).
    type: dict
    required: true
  source:
    description: Source host.
    type: str
    required: true
  target:
    description: Target host.
    type: str
    required: true
  outcome:
    description: How the migration ended.
    type: str
    required: true
    choices: [migrated, rolled_back, failed]
  error:
    description: What went wrong, when it did.
    type: str
  report_dir:
    description: Directory for the report files.
    type: path
    default: migration-reports
extends_documentation_fragment:
  - stacklift.migrate.attributes
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Builds the report, writes nothing.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Write the report
  stacklift.migrate.migration_report:
    plan: "{{ stacklift_plan }}"
    phases: "{{ stacklift_phase_results }}"
    source: node1
    target: node2
    outcome: migrated
  delegate_to: localhost
"""

RETURN = r"""
report:
  description: The report (also written as JSON). Every time is epoch seconds on the source's clock.
  returned: always
  type: dict
  contains:
    stack:
      description: The stack's name.
      type: str
      sample: shop
    source:
      description: The source hosts, comma-separated.
      type: str
      sample: node1
    target:
      description: The target hosts, comma-separated.
      type: str
      sample: node2
    outcome:
      description: How the migration ended.
      type: str
      choices: [migrated, rolled_back, failed]
      sample: migrated
    error:
      description: What went wrong (null when nothing did).
      type: str
      sample: "Restore on the targets behind their fence, tier by tier: node2: cache: not ready within 60 s"
    downtime_s:
      description: Seconds from the first fence to the commit (a rollback, to the source's fences lifted).
      type: float
      sample: 3.61
    started:
      description: The first recorded time.
      type: float
      sample: 1764324915.412
    finished:
      description: The last recorded time.
      type: float
      sample: 1764324921.873
    clock:
      description: The clock the times are on (V(source)), each target's measured offset and the largest error.
      type: dict
      sample: {reference: source, target_offsets_s: {node2: 0.0004}, max_error_s: 0.0011}
    checkpoint_order:
      description: The tiers the services were checkpointed in.
      type: list
      elements: list
      sample: [[db, cache], [app]]
    restore_order:
      description: The tiers the services were restored in, each ready before the next.
      type: list
      elements: list
      sample: [[db, cache], [app]]
    window_slot:
      description:
        - In a fleet run with C(stacklift_fleet_windows), the source host's window slot the stack held
          from before its quiesce to its commit; null when it took none.
        - C(waited_s) for it, when it was C(given_back) and on whose word (C(given_back_on)) V(targets)
          (they served) or the controller's V(commit note) or V(abort note).
      type: dict
      sample: {slot: 0, waited_s: 4.21, given_back: 1764324921.702, given_back_on: targets}
    services:
      description:
        - Each service's C(tier), C(container), C(archive_bytes) and C(phases), each phase
          (V(quiesce), V(fence), V(checkpoint), V(transfer), V(restore), V(ready), V(commit), V(rollback), ...)
          with its C(start), C(end) and C(seconds).
      type: dict
      sample:
        db:
          tier: 0
          container: shop-db
          archive_bytes: 3612345
          phases:
            fence: {start: 1764324915.412, end: 1764324915.424, seconds: 0.012}
            checkpoint: {start: 1764324915.424, end: 1764324915.866, seconds: 0.442}
downtime_s:
  description: Seconds from the first fence to the last service ready on the target.
  returned: always
  type: float
  sample: 3.6
path:
  description: Path of the JSON report.
  returned: unless check mode
  type: str
  sample: "/srv/stacklift/reports/shop-20261128T101515.json"
summary_path:
  description: Path of the text summary.
  returned: unless check mode
  type: str
  sample: "/srv/stacklift/reports/shop-20261128T101515.txt"
timeline_path:
  description: Path of the SVG timeline.
  returned: unless check mode
  type: str
  sample: "/srv/stacklift/reports/shop-20261128T101515.svg"
summary:
  description: The text summary.
  returned: always
  type: str
  sample: "stacklift migration of shop: node1 -> node2, migrated, downtime 3.6 s\n"
"""

import json
import os
import time

from ansible_collections.stacklift.migrate.plugins.module_utils._common.argspec import ArgumentSpec
from ansible_collections.stacklift.migrate.plugins.module_utils._stack import report as rep


def main():
    module = ArgumentSpec(dict(
        plan=dict(type="dict", required=True),
        phases=dict(type="dict", required=True),
        source=dict(type="str", required=True),
        target=dict(type="str", required=True),
        outcome=dict(type="str", required=True, choices=["migrated", "rolled_back", "failed"]),
        error=dict(type="str"),
        report_dir=dict(type="path", default="migration-reports"),
    )).create_module(supports_check_mode=True)
    p = module.params
    report = rep.build(p["plan"], p["phases"], p["source"], p["target"], p["outcome"], p["error"])
    text = rep.summary(report)
    result = dict(changed=False, report=report, downtime_s=report["downtime_s"], summary=text)
    if not module.check_mode:
        if not os.path.isdir(p["report_dir"]):
            os.makedirs(p["report_dir"])
        base = rep.report_base(p["report_dir"], report["stack"], time.strftime("%Y%m%dT%H%M%S"))
        with open(base + ".json", "w") as f:
            json.dump(report, f, indent=2, sort_keys=True)
        with open(base + ".txt", "w") as f:
            f.write(text)
        with open(base + ".svg", "w") as f:
            f.write(rep.timeline_svg(report))
        result.update(changed=True, path=base + ".json", summary_path=base + ".txt", timeline_path=base + ".svg")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
