"""The root exception of the loadtest package."""


class LoadTestError(Exception):
    """A known user error (server unreachable, model not served, perf_analyzer missing, bad option): one line."""
