# -*- coding: utf-8 -*-
# Copyright (c) stacklift developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layer 5, the top: the migration window run on the hosts: what both sides share (base), the source
(source) and the target (target), the host fences (fences), the sender, the note and marker protocol
with its Python and shell forms (protocol), window slots (slots), the journal and the lock
(journal), the controller's wait (progress), and what the two window modules share (module)."""
