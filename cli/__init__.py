"""Command-line tools of minietcd."""
