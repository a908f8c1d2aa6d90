"""API keys: only a SHA-256 digest of the key is stored.

Keys are 192-bit random tokens, so a fast hash is safe here (nothing to brute-force);
a slow password hash would cost every request for no gain.
"""

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, LargeBinary, String
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(12))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    location_ids: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
