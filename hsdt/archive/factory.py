"""Which object store the archive uses: the one place that reads the backend setting.

``HSDT_ARCHIVE_BACKEND=s3`` → S3 Object Lock (the bucket is checked for versioning and
Object Lock before anything is written; "permanent" = the longest retention the provider
stores correctly); otherwise the local write-once directory, meant for one machine.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from hsdt.archive.ingest import PERMANENT
from hsdt.archive.store import LocalWormStore, ObjectStore
from hsdt.settings import archive_backend


def open_store(root: Path) -> tuple[ObjectStore, datetime]:
    """The configured store and the retain-until date "permanent" means for it."""
    if archive_backend() == "s3":
        from hsdt.archive.s3 import S3ObjectLockStore, S3Settings

        s3 = S3ObjectLockStore.open(S3Settings.from_env())  # refuses a bucket without Object Lock
        return s3, s3.permanent_until()
    return LocalWormStore(root), PERMANENT
