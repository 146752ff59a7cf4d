# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 3: SSH between hosts (paramiko): connections through jump hosts, host keys, pushes verified as
they arrive, streams between commands. Imports _common and _archive."""
