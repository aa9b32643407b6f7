"""Request and response bodies of the REST API (they become the published OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hsdt.db.models import WindowKind, WitnessCapacity
from hsdt.domain.schema import Term
from hsdt.service.remote_signing import ItemResult


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(_In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: str
    full_name: str


class Problem(BaseModel):
    error: str = Field(description="Mã lỗi máy đọc được")
    message: str = Field(description="Thông báo tiếng Việt cho người dùng")
    problems: list[dict[str, str]] = Field(default_factory=list)


class BundleOut(BaseModel):
    id: int
    sha256: str
    revision: int
    school_year: str
    term: str
    school: str
    students: int
    locked: bool
    class_: str = Field(alias="class")
    model_config = ConfigDict(populate_by_name=True)


class RevisionOut(BaseModel):
    revision_id: int
    record_id: str
    revision: int
    state: str
    stage: int | None
    pdf_sha256: str | None
    supersedes_id: int | None = None


class PrepareIn(_In):
    certificate: str = Field(description="Chứng thư ký (DER, base64)", max_length=20000)
    chain: list[str] = Field(default_factory=list, max_length=8,
                             description="Chứng thư trung gian (DER, base64)")


class PreparedOut(BaseModel):
    id: str
    step_id: int
    record_id: str
    field_name: str
    label: str
    student_code: str
    student_name: str
    class_name: str
    school_year: str
    term: str
    to_be_signed: str
    to_be_signed_sha256: str
    digest_algorithm: str
    signature_mechanism: str
    pkcs11_mechanism: str
    expires_at: str


class CompleteIn(_In):
    signature_value: str = Field(description="Giá trị chữ ký (base64)", max_length=4000)


class RejectIn(_In):
    reason: str = Field(min_length=1, max_length=2000)


class CorrectionIn(_In):
    record_id: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class WitnessIn(_In):
    username: str = Field(min_length=1, max_length=64)
    capacity: WitnessCapacity


class ApproveIn(_In):
    witnesses: list[WitnessIn] = Field(max_length=10)
    note: str | None = Field(default=None, max_length=2000)


class RefuseIn(_In):
    note: str = Field(min_length=1, max_length=2000)


class CorrectionOut(BaseModel):
    id: int
    state: str
    reason: str
    record_id: str | None
    new_bundle_id: int | None
    revisions: list[RevisionOut] = Field(default_factory=list)


class WindowIn(_In):
    kind: WindowKind
    school_year: str = Field(pattern=r"^\d{4}-\d{4}$")
    term: Term
    opens_at: datetime
    closes_at: datetime
    unit_id: int | None = None
    class_id: int | None = None
    reason: str | None = Field(default=None, max_length=2000)


class WindowOut(BaseModel):
    id: int
    kind: str
    school_year: str
    term: str
    opens_at: datetime
    closes_at: datetime
    unit_id: int | None
    class_id: int | None


class ArchiveEntryOut(BaseModel):
    sha256: str
    record_id: str
    kind: str
    student_code: str
    school_code: str
    school_year: str
    revision: int
    version_id: str
    retain_until: str
    stored_at: str
    superseded_by: str | None
    renewed_from: str | None


JSONObject = dict[str, Any]


# -- remote signing ---------------------------------------------------------------------------
class ProviderOut(BaseModel):
    name: str
    kind: str = Field(description="csc (ký qua CSC API) hoặc smartca (xác nhận trên điện thoại)")
    display_name: str
    needs_password: bool = Field(description="Giáo viên nhập mật khẩu tài khoản của mình tại nhà cung cấp")


class RemoteBatchIn(_In):
    provider: str = Field(min_length=1, max_length=64)
    step_ids: list[int] | None = Field(default=None, max_length=2000,
                                       description="Các ô cần ký; bỏ trống: mọi ô đang chờ bạn")
    class_name: str | None = Field(default=None, max_length=40, description="Chỉ các ô của lớp này")


class CscSignIn(RemoteBatchIn):
    pin: str = Field(min_length=1, max_length=64, description="Mã PIN của khoá ký tại nhà cung cấp")
    otp: str | None = Field(default=None, max_length=64)
    password: str | None = Field(default=None, max_length=1024,
                                 description="Mật khẩu tài khoản tại nhà cung cấp (khi nhà cung cấp yêu cầu)")
    credential_id: str | None = Field(default=None, max_length=200)


class RemoteBatchOut(BaseModel):
    provider: str
    signed: int
    refused: int
    failed: int
    pending: int
    authorizations: int = Field(description="Số lần xác thực PIN/OTP đã dùng cho cả lô")
    approval_id: str | None = None
    approval_state: str | None = None
    expires_at: datetime | None = None
    items: list[ItemResult]


class RemoteAccountIn(_In):
    account: str = Field(min_length=1, max_length=200,
                         description="Mã tài khoản của người dùng tại nhà cung cấp")
    credential_id: str | None = Field(default=None, max_length=200)


# -- certificates -----------------------------------------------------------------------------
class CertificateIn(_In):
    certificate: str = Field(min_length=1, max_length=65536, description="Chứng thư số (DER, mã hoá base64)")


class WithdrawIn(_In):
    reason: str = Field(min_length=1, max_length=200, description="Lý do thu hồi")
