"""One file per schema revision; each is frozen once released (a change is a new revision)."""
