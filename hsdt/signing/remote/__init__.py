"""Signing through a CA's remote service: the teacher's key never reaches this server.

Two shapes exist in Vietnam, and a school may use either:

- :mod:`~hsdt.signing.remote.csc` — the Cloud Signature Consortium API (v1 and v2), as
  Viettel MySign exposes it: the teacher authorises a whole batch with PIN/OTP once and the
  service asks for many hash signatures in one call (synchronous).
- :mod:`~hsdt.signing.remote.approval` — asynchronous hash signing with approval in a phone
  app, as VNPT SmartCA does it: hashes are submitted, the teacher confirms on the phone, the
  service polls or is called back (:mod:`~hsdt.signing.remote.smartca` is one adapter).

Both only ever sign what :class:`hsdt.signing.deferred.DeferredSigner` prepared: the rules
of the plan, the certificate binding and the revocation checks run here, before any hash
leaves, and again when the value comes back.
"""

from hsdt.signing.remote.common import RemoteCertificate, RemoteSigningError

__all__ = ["RemoteCertificate", "RemoteSigningError"]
