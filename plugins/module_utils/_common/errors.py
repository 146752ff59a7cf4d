# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one base of every error stacklift raises: a message, and the details a module's failure
reports beside it (cmd, rc, stdout, stderr, problems, ...). A module catches ``StackliftError``
once and fails with ``fail_kwargs()``; the window's calls do the same, once, in ``run_window``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

__all__ = ["StackliftError"]


class StackliftError(Exception):
    """MSG, and DETAILS for AnsibleModule.fail_json."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def fail_kwargs(self):
        """Keyword arguments for AnsibleModule.fail_json: the details, and the message."""
        return dict(self.details, msg=self.msg)
