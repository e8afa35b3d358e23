"""segserve serve: run the real local tritonserver (CPU, python backend) on a model repository."""

from serve.security import ADMIN_KEY_ENV, ADMIN_KEY_HEADER, GRPC_ADMIN_KEY_HEADER, MAX_REQUEST_BYTES
from serve.server import ServerConfig, ServeError, TritonServer

__all__ = ["ADMIN_KEY_ENV", "ADMIN_KEY_HEADER", "GRPC_ADMIN_KEY_HEADER", "MAX_REQUEST_BYTES", "ServeError",
           "ServerConfig", "TritonServer"]
