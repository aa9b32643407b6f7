"""Database tests (a package, so that this folder's conftest.py never shadows tests/conftest.py,
which other test modules import as ``conftest``)."""
