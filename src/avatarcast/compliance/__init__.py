"""Compliance records: the audit trail, retention, stream exports and C2PA credentials.

What each piece answers for (GB 45438-2025, the live-commerce record-keeping rules, EU AI Act
Art. 50) is described in ``docs/compliance.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avatarcast.compliance.audit import AuditEntry, AuditLog, VerifyResult, read_jsonl, verify
    from avatarcast.compliance.c2pa import SignerConfig, read_c2pa, segment_signer, sign_mp4
    from avatarcast.compliance.export import ExportResult, check_export, export_stream
    from avatarcast.compliance.retention import PurgeReport, Retention, RetentionPolicy

# Loaded on first use: a live stream needs C2PA signing, not the database models behind audit.
_HOME = {
    "AuditEntry": "audit", "AuditLog": "audit", "VerifyResult": "audit", "read_jsonl": "audit",
    "verify": "audit", "SignerConfig": "c2pa", "read_c2pa": "c2pa", "segment_signer": "c2pa",
    "sign_mp4": "c2pa", "ExportResult": "export", "check_export": "export",
    "export_stream": "export", "PurgeReport": "retention", "Retention": "retention",
    "RetentionPolicy": "retention",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'avatarcast.compliance' has no attribute {name!r}")
    return getattr(importlib.import_module(f"avatarcast.compliance.{_HOME[name]}"), name)


__all__ = [
    "AuditEntry",
    "AuditLog",
    "ExportResult",
    "PurgeReport",
    "Retention",
    "RetentionPolicy",
    "SignerConfig",
    "VerifyResult",
    "check_export",
    "export_stream",
    "read_c2pa",
    "read_jsonl",
    "segment_signer",
    "sign_mp4",
    "verify",
]
