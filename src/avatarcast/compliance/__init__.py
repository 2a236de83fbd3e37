"""Compliance records: the audit trail, retention, stream exports and C2PA credentials.

What each piece answers for (GB 45438-2025, the live-commerce record-keeping rules, EU AI Act
Art. 50) is described in ``docs/compliance.md``.
"""
