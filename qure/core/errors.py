"""Domain errors: stable machine codes that both the API and the HTML side understand."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose.

    `code` is stable and machine-readable (e.g. `slot_taken`); `message` is for people;
    `fields` maps a field name to its message; `details` carries data such as ids.
    """

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        code: str | None = None,
        fields: dict[str, str] | None = None,
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}
        self.details = details or {}


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"

    @classmethod
    def naming(cls, fields: dict[str, str]) -> InvalidInput:
        """The error for several bad fields at once; its message names the first."""
        field, message = next(iter(fields.items()))
        return cls(f"{field}: {message}", fields=fields)


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unauthorized(DomainError):
    status = 401
    code = "invalid_credentials"


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(DomainError):
    """A store a read needs does not answer (MongoDB for the reports)."""

    status = 503
    code = "unavailable"


class DatabaseUnavailable(Unavailable):
    """PostgreSQL cannot be reached, or reads but refuses changes (read-only, disk full):
    the edge answers this (core.http) for the database errors `core.db.unavailable`
    names. `retry_after` is the seconds to suggest before trying again."""

    code = "database_unavailable"
    REFUSING = (
        "The database is not accepting changes just now (it is read-only or out of space); "
        "nothing was saved. Try again in a few minutes; if it keeps happening, tell your "
        "administrator."
    )
    AWAY = (
        "The database cannot be reached just now. Try again in a moment; if it keeps "
        "happening, tell your administrator."
    )

    def __init__(self, refusing_changes: bool) -> None:
        self.retry_after = 30 if refusing_changes else 5
        super().__init__(
            self.REFUSING if refusing_changes else self.AWAY,
            details={"retry_after": self.retry_after},
        )
