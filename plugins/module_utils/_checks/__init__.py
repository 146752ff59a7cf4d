# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 3: what is checked of a host before anything is frozen: CRIU against the kernel, capabilities,
names, restart managers, space and memory (host), and what would block a restore (restore). Imports
the layers below."""
