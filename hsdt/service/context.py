"""What the service needs from the outside world, built once per process.

One :class:`ServiceContext` holds the database sessions, the signer that checks and embeds
signatures (with its TSA client and revocation cache), the school seals' server-held keys
(HSM), the working copies and the archive. Signing and archiving go through one lock per
process: pyHanko's signer is not thread-safe, and the API serves requests from a thread
pool. The certificate registry is read from the database for the record's school at the
moment of each operation, so a binding revoked a second ago already counts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from asn1crypto import x509
from sqlalchemy.orm import Session, sessionmaker

from hsdt.archive.ingest import Archive
from hsdt.db.bindings import bindings_for_school
from hsdt.db.models import OrgUnit
from hsdt.signing.deferred import DeferredSigner
from hsdt.signing.keys import SigningKey
from hsdt.signing.pades import RecordSigner, SigningEnvironment
from hsdt.signing.remote.providers import RemoteSigningConfig
from hsdt.signing.verification import Verifier

if TYPE_CHECKING:
    from hsdt.service.dispatch import Dispatcher


@dataclass
class ServiceContext:
    sessions: sessionmaker[Session]
    trust_roots: list[x509.Certificate]
    tsa_url: str
    workspace_root: Path
    seal_keys: Mapping[str, Callable[[], SigningKey]] = field(default_factory=dict)
    """School code → opener of that school's seal key (kept on the server's HSM)."""
    archive_factory: Callable[[], Archive] | None = None
    archive_lock: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext
    """Serialises archive writers across processes (workers share one archive)."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    dispatcher: Dispatcher | None = None
    """Where render/certify/finish run; None: in the request (embedded default)."""
    remote: RemoteSigningConfig = field(default_factory=RemoteSigningConfig)
    """The remote-signing providers (CSC, phone approval) this deployment uses."""

    def __post_init__(self) -> None:
        from hsdt.service.dispatch import InlineDispatcher
        from hsdt.service.workspace import Workspace

        if self.dispatcher is None:
            self.dispatcher = InlineDispatcher(self)

        self.workspace = Workspace(self.workspace_root)
        self._signing = threading.RLock()
        self._signer: RecordSigner | None = None
        self._deferred: DeferredSigner | None = None
        self._keys: dict[str, SigningKey] = {}
        self._archive: Archive | None = None

    # -- signing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def signer_for(self, session: Session, school: OrgUnit) -> Iterator[RecordSigner]:
        """The record signer, holding the process's signing lock, with the school's registry."""
        with self._signing:
            env = SigningEnvironment(self.trust_roots, self.tsa_url,
                                     bindings_for_school(session, school, self.clock()), self.clock)
            if self._signer is None:
                self._signer = RecordSigner(env)
            self._signer.env = env
            yield self._signer

    @contextlib.contextmanager
    def deferred_for(self, session: Session, school: OrgUnit) -> Iterator[DeferredSigner]:
        with self.signer_for(session, school) as signer:
            if self._deferred is None:
                self._deferred = DeferredSigner(signer, clock=lambda: self.clock())
            yield self._deferred

    def seal_key(self, school_code: str) -> SigningKey | None:
        """The school's seal key, opened once per process; None when this server has none."""
        if school_code not in self._keys:
            opener = self.seal_keys.get(school_code)
            if opener is None:
                return None
            self._keys[school_code] = opener()
        return self._keys[school_code]

    # -- archive ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def archive_for(self, session: Session, school: OrgUnit | None) -> Iterator[Archive]:
        """The archive, locked for writing, whose verifier knows the school's registry."""
        if self.archive_factory is None:
            from hsdt.service.errors import ServiceError

            raise ServiceError("Dịch vụ chưa được cấu hình kho lưu trữ.", code="no_archive")
        with self._signing, self.archive_lock():
            if self._archive is None:
                self._archive = self.archive_factory()
            self._archive.verifier = self.verifier_for(session, school)
            yield self._archive

    def verifier_for(self, session: Session, school: OrgUnit | None) -> Verifier:
        """The archive's verifier for a school's records (offline: the record's own DSS), to
        verify before taking the archive's lock — only storing needs it."""
        bindings = bindings_for_school(session, school, self.clock()) if school else None
        return Verifier(self.trust_roots, bindings, online=False)

    def close(self) -> None:
        for key in self._keys.values():
            with contextlib.suppress(Exception):
                key.close()
        self._keys.clear()
        if self._signer is not None:
            with contextlib.suppress(Exception):
                self._signer.close()
            self._signer = self._deferred = None
        if self._archive is not None:
            self._archive.close()
            self._archive = None
