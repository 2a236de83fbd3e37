"""One exception tree. Every error says what failed, with which value, and whether a retry helps."""

from __future__ import annotations


class AvatarcastError(Exception):
    """Base of every error avatarcast raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(AvatarcastError):
    """A setting, option or name given by the user is not valid (not retryable).

    ``field`` names the option when one is to blame (``"voice"``): the CLI prints the message,
    the API answers 422 at ``body.<field>``.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CatalogError(AvatarcastError):
    """A catalog file or row failed validation."""

    def __init__(self, message: str, *, problems: list[CatalogProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class CatalogProblem:
    """One bad row or field in a catalog: where (row index or line), which field, and why."""

    __slots__ = ("field", "product_id", "reason", "row")

    def __init__(
        self, *, row: int | str, field: str, reason: str, product_id: str | None = None
    ) -> None:
        self.row = row
        self.field = field
        self.reason = reason
        #: the row's product id when it has one: what a person searches a big catalog for
        self.product_id = product_id

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"row": self.row, "field": self.field, "reason": self.reason}
        if self.product_id is not None:
            found["product_id"] = self.product_id
        return found

    def __str__(self) -> str:
        named = f" (id {self.product_id!r})" if self.product_id is not None else ""
        return f"row {self.row}{named}: field {self.field!r}: {self.reason}"

    def __repr__(self) -> str:
        return (
            f"CatalogProblem(row={self.row!r}, field={self.field!r}, reason={self.reason!r}, "
            f"product_id={self.product_id!r})"
        )


class UnknownNameError(ConfigError):
    """An avatar, voice, language or writer name that is not installed."""

    def __init__(self, kind: str, name: str, known: list[str], *, field: str | None = None) -> None:
        choices = ", ".join(sorted(known)) or "none installed"
        super().__init__(f"unknown {kind} {name!r}; available: {choices}", field=field)
        self.kind = kind
        self.name = name
        self.known = known


class VoiceError(AvatarcastError):
    """Speech synthesis failed. Network engines raise it retryable."""


class MediaError(AvatarcastError):
    """Encoding, muxing or writing media failed."""


class OutputError(MediaError):
    """A sink (file, RTMP destination, WHEP viewer) failed."""


class SessionError(AvatarcastError):
    """A replay session file is malformed."""


class ComplianceError(AvatarcastError):
    """An audit file, retention run, export or C2PA signature failed (not retryable)."""
