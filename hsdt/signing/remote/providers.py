"""The remote-signing providers a deployment uses: endpoints, credentials, timeouts.

Read from a TOML file (``HSDT_REMOTE_SIGNING``; see ``docs/remote-signing.md``). Secrets are
never in the file: it names the environment variable holding each one (``…_env``), so the
file can be reviewed and versioned. A provider kind is one adapter module; adding a CA is
one module plus a section here.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hsdt.signing.remote.common import RemoteSigningError, Retry
from hsdt.signing.remote.csc import CscClient
from hsdt.signing.remote.smartca import SmartCaProvider


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    display_name: str
    base_url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    retries: int = Field(default=4, ge=1, le=10)

    @property
    def retry(self) -> Retry:
        return Retry(attempts=self.retries)


def _secret(var: str | None, provider: str, what: str) -> str:
    if not var:
        return ""
    value = os.environ.get(var)
    if not value:
        raise RemoteSigningError(
            f"Thiếu {what} của nhà cung cấp «{provider}»: đặt biến môi trường {var}.", code="not_configured")
    return value


class CscProviderConfig(_Base):
    kind: Literal["csc"]
    csc_version: Literal[1, 2] = 1
    auth: Literal["basic", "oauth2_client"] = "basic"
    client_id: str | None = None
    """OAuth2 client credentials (``auth = "oauth2_client"``): the service's own client id."""
    client_secret_env: str | None = None

    @property
    def needs_password(self) -> bool:
        """The teacher types their own provider password (HTTP Basic login)."""
        return self.auth == "basic"

    def client(self, name: str) -> CscClient:
        return CscClient(self.base_url, name=self.display_name or name, version=self.csc_version,
                         auth=self.auth, timeout_s=self.timeout_s, retry=self.retry)

    def login_for(self, name: str, account: str, password: str | None) -> tuple[str, str]:
        """Who logs in: the teacher's own provider account (basic) or the service's client."""
        if self.auth == "oauth2_client":
            return self.client_id or account, _secret(self.client_secret_env, name, "client_secret")
        if not password:
            raise RemoteSigningError(
                f"Cần mật khẩu tài khoản «{self.display_name}» của bạn để đăng nhập nhà cung cấp.",
                code="password_required")
        return account, password


class SmartCaProviderConfig(_Base):
    kind: Literal["smartca"]
    sp_id: str
    sp_password_env: str
    callback_secret_env: str
    poll_interval_s: float = Field(default=5.0, gt=0)
    """First wait between two polls of a pending approval; doubles up to the maximum."""
    poll_max_interval_s: float = Field(default=60.0, gt=0)
    needs_password: ClassVar[bool] = False  # the service signs in as itself (sp_id)

    def provider(self, name: str) -> SmartCaProvider:
        return SmartCaProvider(name, self.base_url, self.sp_id,
                               _secret(self.sp_password_env, name, "sp_password"),
                               _secret(self.callback_secret_env, name, "callback secret").encode(),
                               timeout_s=self.timeout_s, retry=self.retry)


ProviderConfig = Annotated[CscProviderConfig | SmartCaProviderConfig, Field(discriminator="kind")]


class RemoteSigningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)

    def get(self, name: str) -> CscProviderConfig | SmartCaProviderConfig:
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "chưa cấu hình nhà cung cấp nào"
            raise RemoteSigningError(f"Không có nhà cung cấp ký từ xa «{name}» (có: {known}).",
                                     code="unknown_provider") from None


def load_config(path: Path | None) -> RemoteSigningConfig:
    """The file's providers, or none; a malformed file is refused naming the field."""
    if path is None:
        return RemoteSigningConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return RemoteSigningConfig.model_validate(raw)
    except FileNotFoundError:
        raise RemoteSigningError(f"Không tìm thấy tệp cấu hình ký từ xa {path}.",
                                 code="not_configured") from None
    except tomllib.TOMLDecodeError as exc:
        raise RemoteSigningError(f"Tệp {path} không phải TOML hợp lệ: {exc}.",
                                 code="not_configured") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise RemoteSigningError(f"Cấu hình ký từ xa {path} sai: {problems}.",
                                 code="not_configured") from None
