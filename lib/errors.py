"""The one exception tree of the product; foreign exceptions are translated into it at the edges."""

from __future__ import annotations


class AvailabilityCronError(Exception):
    """Root of every error this product raises on purpose."""


class ConfigError(AvailabilityCronError):
    """An environment variable is missing or invalid; the message names the variable, never its value."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


class InvalidParameter(AvailabilityCronError):
    """A request option is malformed (answered with 400)."""

    def __init__(self, param: str, detail: str) -> None:
        super().__init__(f"{param}: {detail}")
        self.param = param
        self.detail = detail


class DatabaseError(AvailabilityCronError):
    """The database could not be reached or answered with an error.

    `kind` is a short class of failure for the report ("Database unreachable", ...); the message
    never contains a password.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class LockLostError(DatabaseError):
    """The connection that held the advisory lock died, so the run must stop writing."""


class ProviderError(AvailabilityCronError):
    """A calendar provider could not be read for one workspace; the message is for `lastError`.

    `on_tenant_host` is set where the failing request went to a host the tenant owns (a GoHighLevel
    white-label or custom-domain booking page): such a failure says nothing about the provider's
    API, so it never counts toward the provider's cool-down.
    """

    on_tenant_host: bool = False


class ProviderTimeout(ProviderError):
    """The provider did not answer within the time the run could give it."""


class RunOutOfTime(ProviderTimeout):
    """The run's budget left no time for the request: the provider is not to blame."""


class ProviderUnreachable(ProviderError):
    """The connection to the provider failed (refused, reset, DNS)."""


class ProviderHTTPError(ProviderError):
    """The provider answered with an unusable HTTP status."""

    def __init__(self, message: str, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class ProviderRateLimited(ProviderHTTPError):
    """The provider answered 429; `retry_after_s` is how long it asked us to wait, when it said."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message, 429, retry_after_s)


class ProviderResponseError(ProviderError):
    """The provider answered, but not with the shape we expect (malformed JSON, wrong types)."""
