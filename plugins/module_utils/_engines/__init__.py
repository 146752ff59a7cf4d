# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 2: the container engines behind one abstract interface (base), Podman through its CLI
(podman), Docker through the Engine API (docker, docker_archive), and which one a host has
(selection). Imports _common and _archive."""
