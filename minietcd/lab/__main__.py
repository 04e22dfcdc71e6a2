"""``python -m minietcd.lab``: the ``minietcd-lab`` command (see minietcd.lab.cli)."""

from __future__ import annotations

import sys

from minietcd.lab.cli import main

sys.exit(main())
