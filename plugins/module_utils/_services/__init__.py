# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 3: talking to the services themselves: readiness probes (probes) and quiescing before a
checkpoint (quiesce). Imports only _common."""
