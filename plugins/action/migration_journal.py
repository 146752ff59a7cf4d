# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""migration_journal on the controller, in the task's own process: the journal is the controller's,
and a record of the commit should cost no module start inside the migration window."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.plugins.action import ActionBase
from ansible_collections.stacklift.migrate.plugins.module_utils._window.journal import (
    JOURNAL_SPEC, journal_task)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        dummy, params = self.validate_argument_spec(**JOURNAL_SPEC.validate_kwargs())
        params["journal_dir"] = os.path.expanduser(params["journal_dir"])
        failed, out = journal_task(params, check_mode=self._task.check_mode)
        result.update(out)
        if failed:
            result["failed"] = True
        return result
