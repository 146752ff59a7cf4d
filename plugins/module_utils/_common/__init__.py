# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 0, the standard library only: the one error base (errors) and files that a crash or a planted
link cannot make lie (files). Every other package may import it; it imports none."""
