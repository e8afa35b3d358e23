"""The client package's one root exception."""


class ClientError(Exception):
    """A known user error: unreadable image, unknown model, unreachable server. The CLI prints it as one line."""
