"""``python -m minietcdctl ...``"""

from __future__ import annotations

from minietcdctl.main import main

main()
