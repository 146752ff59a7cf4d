# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""stack_plan: a plan alone is pure Python and is made on the controller, in the task's own process
(a migration plans before anything else, and a fleet plans every stack at once); what needs a host's
engine (list_running, check_containers, discover_depends_on) runs as the module on that host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase
from ansible_collections.stacklift.migrate.plugins.module_utils._engines.selection import ENGINE_SPEC
from ansible_collections.stacklift.migrate.plugins.module_utils._stack.description import (
    PLAN_SPEC, StackError, as_planned, checked, invalid, plan, without_secrets)

ON_HOST = ("list_running", "check_containers", "discover_depends_on")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        dummy, p = self.validate_argument_spec(**PLAN_SPEC.merge(ENGINE_SPEC).validate_kwargs())
        if any(p[k] for k in ON_HOST):
            result.update(self._execute_module(module_name="stacklift.migrate.stack_plan", module_args=self._task.args,
                                               task_vars=task_vars))
            return result
        try:
            stack = as_planned(p)
            checked(stack, p["settings"], p["inventory_hosts"])
            made = plan(stack)
        except StackError as e:
            return dict(result, failed=True, msg=invalid(p["stack"], e), problems=e.problems)
        return dict(result, changed=False, plan=without_secrets(made), discovered_depends_on={})
