"""API tokens in the store (``api_token``): add, list, revoke, look up by hash, note a use.

The store never sees a token, only its keyed hash (``syncd.service.access``); a name is
never reused, so the audit log's "approved by NAME" keeps meaning one token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from syncd.errors import SyncdError
from syncd.store.db import Database
from syncd.store.tables import API_TOKEN


@dataclass(frozen=True, slots=True)
class TokenRow:
    """One API token as the store keeps it (its hash is not handed out)."""

    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked_at is None


def _row(row: RowMapping) -> TokenRow:
    return TokenRow(
        id=int(row["id"]),
        name=row["name"],
        role=row["role"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


_SHOWN = (
    API_TOKEN.c.id,
    API_TOKEN.c.name,
    API_TOKEN.c.role,
    API_TOKEN.c.created_at,
    API_TOKEN.c.last_used_at,
    API_TOKEN.c.revoked_at,
)


def add(db: Database, name: str, role: str, token_hash: str, now: datetime) -> TokenRow:
    """Keep a new token; ``SyncdError`` if the name was ever used."""
    with db.write() as conn:
        taken = conn.execute(
            sa.select(API_TOKEN.c.revoked_at).where(API_TOKEN.c.name == name)
        ).first()
        if taken is not None:
            state = "revoked" if taken.revoked_at is not None else "active"
            raise SyncdError(
                f"a token named {name!r} exists already ({state}): names are never reused, "
                "so the audit log's names stay unambiguous; choose another name"
            )
        token_id = conn.execute(
            API_TOKEN.insert()
            .values(name=name, role=role, token_hash=token_hash, created_at=now)
            .returning(API_TOKEN.c.id)
        ).scalar_one()
    return TokenRow(int(token_id), name, role, now, None, None)


def listed(db: Database) -> list[TokenRow]:
    """Every token, oldest first, revoked ones included."""
    with db.read() as conn:
        rows = conn.execute(sa.select(*_SHOWN).order_by(API_TOKEN.c.id)).mappings()
        return [_row(row) for row in rows]


def revoke(db: Database, name: str, now: datetime) -> TokenRow:
    """Revoke the token ``name`` (revoking it again changes nothing); ``SyncdError`` for
    an unknown name."""
    with db.write() as conn:
        conn.execute(
            API_TOKEN.update()
            .where(API_TOKEN.c.name == name, API_TOKEN.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        row = conn.execute(sa.select(*_SHOWN).where(API_TOKEN.c.name == name)).mappings().first()
    if row is None:
        raise SyncdError(f"no token named {name!r} (see `syncd tokens list`)")
    return _row(row)


def by_hash(db: Database, token_hash: str) -> tuple[TokenRow, str] | None:
    """The token with this hash and the hash as stored (for a constant-time compare)."""
    with db.read() as conn:
        row = (
            conn.execute(
                sa.select(*_SHOWN, API_TOKEN.c.token_hash).where(
                    API_TOKEN.c.token_hash == token_hash
                )
            )
            .mappings()
            .first()
        )
    return None if row is None else (_row(row), str(row["token_hash"]))


def touch(db: Database, token_id: int, now: datetime) -> None:
    """Note that the token was used at ``now`` (never moving the time back)."""
    with db.write(lock="shared") as conn:
        conn.execute(
            API_TOKEN.update()
            .where(
                API_TOKEN.c.id == token_id,
                sa.or_(API_TOKEN.c.last_used_at.is_(None), API_TOKEN.c.last_used_at < now),
            )
            .values(last_used_at=now)
        )
