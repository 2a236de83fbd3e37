"""Compliance records: the audit trail, retention, stream exports and C2PA credentials.

What each piece answers for (GB 45438-2025, the live-commerce record-keeping rules, EU AI Act
Art. 50) is described in ``docs/compliance.md``.
"""

from avatarcast.compliance.audit import AuditEntry, AuditLog, VerifyResult, read_jsonl, verify
from avatarcast.compliance.c2pa import SignerConfig, read_c2pa, segment_signer, sign_mp4
from avatarcast.compliance.export import ExportResult, check_export, export_stream
from avatarcast.compliance.retention import PurgeReport, Retention, RetentionPolicy

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
