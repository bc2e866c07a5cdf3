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
