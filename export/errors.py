"""The export package's one root exception (user errors: printed as one line by the CLI, exit 1)."""


class ExportError(Exception):
    """A known user error: bad model name, unreadable checkpoint, failed parity check, missing tool."""


class WeightsUnavailableError(ExportError):
    """Pretrained weights could not be fetched (offline machine, blocked hub)."""


class MissingDependencyError(ExportError):
    """An optional heavy package is not installed."""


def require(module: str, package: str | None = None, extra: str = "export"):
    """Import ``module`` or raise one error that names the package and the command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = package or module
        raise MissingDependencyError(
            f"`{module}` is needed for this step but is not installed: pip install '{package}' "
            f"(or `pip install -e .[{extra}]`)"
        ) from exc
