# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: stack_secrets
short_description: The passwords of a stack description, by service
version_added: 0.1.0
description:
  - Takes the passwords (C(postgres_password), C(redis_password)) out of a stack description's
    services' C(probe) and C(quiesce) settings, for the C(secrets) option of
    M(stacklift.migrate.window_source) and M(stacklift.migrate.window_target), which never log it.
  - The plan that M(stacklift.migrate.stack_plan) returns carries no password.
author:
  - stacklift developers (@stacklift)
options:
  _input:
    description: A stack description (C(stacklift_stack)).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Restore with the services' passwords
  stacklift.migrate.window_target:
    stack: shop
    run_id: "{{ run_id }}"
    services: "{{ plan.services }}"
    secrets: "{{ stacklift_stack | stacklift.migrate.stack_secrets }}"
    tiers: "{{ plan.restore_order }}"
"""

RETURN = r"""
_value:
  description: "C({service: {probe: {postgres_password: ...}, quiesce: {...}}}) for the services that have one."
  type: dict
"""

from ansible_collections.stacklift.migrate.plugins.module_utils._stack.description import secrets_of


class FilterModule:
    def filters(self):
        return {"stack_secrets": secrets_of}
