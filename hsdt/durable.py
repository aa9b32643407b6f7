"""Files that appear whole or not at all, survive a power cut, and are never replaced.

A file is written under a temporary name, fsynced, then hard-linked to its name — ``link(2)``
fails if the name exists, so nothing is ever overwritten — and its directory is fsynced so
that the name itself is durable. The work files of the workers and the objects of the
local write-once archive are written this way.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the entries of ``path`` (a created or renamed name) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def publish_once(path: Path, data: bytes, *, mode: int = 0o644) -> bool:
    """Create ``path`` holding ``data`` unless it exists. True if this call created it.

    Never replaces: if another writer published first, its bytes stand and ours are
    dropped, so every reader sees one version. ``mode`` is the file's from its first
    instant (0o444 for a write-once object).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return True
