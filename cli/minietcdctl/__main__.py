"""``python -m cli.minietcdctl ...``"""

from __future__ import annotations

from cli.minietcdctl.main import main

main()
