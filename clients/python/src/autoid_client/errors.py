"""The package's errors: one base class, two kinds (the CLI maps them to exit codes 2 and 3)."""


class AutoidError(Exception):
    """Anything autoid_client refuses or fails to do. Messages never contain a secret."""


class UsageError(AutoidError):
    """A bad argument: a URL, method or subject that cannot be bound (CLI exit code 2)."""


class InputError(AutoidError):
    """An unreadable or malformed file, or a file for another subject (CLI exit code 3)."""
