"""See README "Architecture"."""
