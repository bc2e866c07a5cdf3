"""Exception root of the shared package."""


class CommonError(Exception):
    """Root of every error raised by ``services.common``."""

    code = "common_error"


class ConfigurationError(CommonError):
    """Settings that must not be used in this environment (for example a default secret)."""

    code = "configuration_error"


class MigrationError(CommonError):
    """A migration file could not be applied."""

    code = "migration_error"


class DependencyUnavailable(CommonError):
    """A service this one is configured to use (an ASR or LLM endpoint, say) is not answering.

    The consumer runtime treats it like Kafka or PostgreSQL being down: the message is retried
    for the transient window instead of the call being failed, so an outage of an operator's
    endpoint delays calls rather than failing them. After the window the message is given up
    like any other (dead-lettered, and the service's give-up events published)."""

    code = "dependency_unavailable"
