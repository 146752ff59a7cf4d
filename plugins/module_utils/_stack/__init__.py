# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 4: what a user describes and what is planned from it: the stack description and its plan
(description), stacks as inventory hosts (hosts), fleets and their placement (fleet, placement), and
the migration report (report). Imports the layers below."""
