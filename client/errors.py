"""The client package's root exception, and the one kind of it a caller may need to tell apart."""


class ClientError(Exception):
    """A known user error: unreadable image, unknown model, unreachable server. The CLI prints it as one line."""


class GaveUp(ClientError):
    """A call that ran out of its deadline, or failed again after retrying: not the server's first answer."""
