"""Campaign QR codes (``qr_codes``): the short code printed on a poster and the registered URL
a scan of it goes to. A code is unique on the whole instance (``/q/{code}`` carries no
workspace); it is never deleted, only disabled, so that a printed code never comes back to
life pointing somewhere else."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from opencdp.storage.db import Database
from opencdp.storage.schema import qr_codes


@dataclass(frozen=True)
class QrCode:
    code: str
    workspace_id: str
    campaign: str
    target: str
    created_us: int
    disabled_us: int | None

    @property
    def active(self) -> bool:
        return self.disabled_us is None


class QrCodeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, qr: QrCode) -> bool:
        """Store a new code; False (and nothing stored) when the code is taken, in any
        workspace."""
        try:
            with self.db.write() as conn:
                conn.execute(qr_codes.insert().values(**_row(qr)))
        except IntegrityError:
            return False
        return True

    def get(self, code: str) -> QrCode | None:
        """The code, whichever workspace it belongs to (a scan knows no workspace)."""
        with self.db.read() as conn:
            row = conn.execute(select(qr_codes).where(qr_codes.c.code == code)).first()
        return QrCode(**row._asdict()) if row is not None else None

    def list(
        self, workspace_id: str, *, campaign: str | None = None, limit: int = 1000
    ) -> list[QrCode]:
        """The workspace's codes, newest first (``campaign``: only that campaign's)."""
        query = select(qr_codes).where(qr_codes.c.workspace_id == workspace_id)
        if campaign is not None:
            query = query.where(qr_codes.c.campaign == campaign)
        query = query.order_by(qr_codes.c.created_us.desc(), qr_codes.c.code).limit(limit)
        with self.db.read() as conn:
            return [QrCode(**row._asdict()) for row in conn.execute(query)]

    def disable(self, workspace_id: str, code: str, now_us: int) -> bool:
        """Disable the workspace's code (a scan then finds nothing); True when it was active.
        A code of another workspace is left alone."""
        with self.db.write() as conn:
            changed = conn.execute(
                update(qr_codes)
                .where(
                    qr_codes.c.code == code,
                    qr_codes.c.workspace_id == workspace_id,
                    qr_codes.c.disabled_us.is_(None),
                )
                .values(disabled_us=now_us)
            ).rowcount
        return bool(changed)


def _row(qr: QrCode) -> dict[str, object]:
    return {
        "code": qr.code,
        "workspace_id": qr.workspace_id,
        "campaign": qr.campaign,
        "target": qr.target,
        "created_us": qr.created_us,
        "disabled_us": qr.disabled_us,
    }
