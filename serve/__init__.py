"""segserve serve: run the real local tritonserver (CPU, python backend) on a model repository."""

from serve.server import ServerConfig, ServeError, TritonServer

__all__ = ["ServeError", "ServerConfig", "TritonServer"]
