# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 4: one container's durable, self-describing checkpoint on its host (checkpoint), used by
container_checkpoint and by the window's source. Imports the layers below."""
