"""`python -m minietcd.server`: the same as the `minietcd` command."""

from minietcd.server.main import main

raise SystemExit(main())
