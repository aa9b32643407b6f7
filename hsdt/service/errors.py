"""Errors the service reports, each with the HTTP status an API answers it with.

The status is part of the rule, not of the web layer: "not visible" must be 404 wherever it
is reported, so that one school cannot learn that another school's record exists.
"""

from __future__ import annotations

from typing import Any

from hsdt.domain.errors import HsdtError


class ServiceError(HsdtError):
    status: int = 400
    audit_entry: dict[str, Any] | None = None  # set by hsdt.service.guard.refuse


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Conflict(ServiceError):
    """The request is valid but the record is not in a state that allows it (now)."""

    status = 409
    code = "conflict"


class Refused(ServiceError):
    """A rule of the plan, a certificate or a window refuses the action."""

    status = 422
    code = "refused"


class Unavailable(ServiceError):
    """A provider or service we depend on is failing; the same request may succeed later."""

    status = 503
    code = "unavailable"


class NotAuthentic(ServiceError):
    """A message that claims to come from a provider but cannot be shown to (a callback)."""

    status = 401
    code = "not_authentic"
