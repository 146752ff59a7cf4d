# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment:

    # What every module of the collection shares: the hosts it runs on (with ansible.builtin.action_common_attributes).
    DOCUMENTATION = r"""
options: {}
attributes:
  platform:
    support: full
    platforms: posix
"""

    # A module that only reads: check mode does what a run does, and there is nothing to diff.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Only reads.
  diff_mode:
    support: none
"""

    # A module of the group that module_defaults can set the engine of (meta/runtime.yml).
    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Part of the action group C(stacklift.migrate.migrate), for setting O(engine) once in C(module_defaults).
    support: full
    membership:
      - stacklift.migrate.migrate
"""
