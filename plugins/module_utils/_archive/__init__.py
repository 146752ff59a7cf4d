# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 1: checkpoint archives as bytes, below every engine: the tar stream, the writer, the digest
and the manifest (stream), what an archive holds (facts), archives encrypted at rest (encryption).
Imports only _common."""
