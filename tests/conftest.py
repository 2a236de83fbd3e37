"""Shared fixtures. Area-specific fixtures live in their own modules under tests/."""
