"""The local server's security posture, defined once: restricted Triton APIs and their key, loopback binding, the
documented request-size limit.

tritonserver 2.51 (the newest the pip wheel carries) predates the fixes of NVIDIA's 2025-2026 Triton security
bulletins (HTTP chunked-encoding overflow, shared-memory chain, authentication bypass, path traversal), so ``serve``
listens on loopback only unless the user forces otherwise, and keeps the shared-memory and repository APIs behind a
key (the chart does the same from a Kubernetes Secret: charts/segserve, value ``triton.adminKey``).
"""

from __future__ import annotations

import ipaddress
import math
import os
import secrets
from typing import Iterable

from export.spec import SPECS, TensorSpec

# Header that carries the admin key. Over HTTP the header is this name; over gRPC Triton expects it with the
# prefix ``triton-grpc-protocol-`` (server src/grpc/grpc_utils.h, kRestrictedProtocolHeaderTemplate, r24.10 =
# Triton 2.51; seen here: "This protocol is restricted, expecting header 'triton-grpc-protocol-segserve-admin-key'").
ADMIN_KEY_HEADER = "segserve-admin-key"
GRPC_ADMIN_KEY_HEADER = f"triton-grpc-protocol-{ADMIN_KEY_HEADER}"
ADMIN_KEY_ENV = "SEGSERVE_ADMIN_KEY"

# Triton API groups that need the key (tritonserver --help: "Allowed protocols: health, metadata, inference,
# shared-memory, model-config, model-repository, statistics, trace, logging"). Shared memory lets a caller make
# Triton write into any region it names (a python-backend stub's own region killed the stub); the repository API
# loads and unloads models. model-config stays open: clients read a model's spec from it.
RESTRICTED_APIS = ("shared-memory", "model-repository")


def request_bytes(inputs: Iterable[TensorSpec], max_batch_size: int) -> int:
    """Bytes of a model's largest request: every input at its full batch (no batch dimension: one item)."""
    return sum(t.nbytes for t in inputs) * max(1, max_batch_size)


MIB = 1 << 20
# Triton 2.51 has no request-size limit of its own: a 1 GB request is buffered whole before it is rejected. The
# documented limit: the largest legitimate request of a registered model (input bytes x max batch), plus 25 %
# headroom for protocol framing, rounded up to whole MiB. With the registered specs: 19 MiB (Mask R-CNN's
# 8 x 1,920,000 B). The client refuses a request above its model's full batch; the chart's ingress caps bodies.
LARGEST_REQUEST_BYTES = max(request_bytes(s.inputs, s.max_batch_size) for s in SPECS.values())
MAX_REQUEST_BYTES = math.ceil(LARGEST_REQUEST_BYTES * 1.25 / MIB) * MIB
MAX_REQUEST_MIB = MAX_REQUEST_BYTES // MIB


def admin_key() -> str:
    """The key from ``SEGSERVE_ADMIN_KEY``, else a fresh random one (never printed: set the variable to know it)."""
    key = os.environ.get(ADMIN_KEY_ENV, "")
    return key if key else secrets.token_urlsafe(32)


def admin_headers(key: str, protocol: str = "grpc") -> dict[str, str]:
    """The headers a client sends to reach a restricted API over ``protocol`` (grpc or http)."""
    return {GRPC_ADMIN_KEY_HEADER if protocol == "grpc" else ADMIN_KEY_HEADER: key}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


EXPOSED_WARNING = (
    "tritonserver 2.51 predates the fixes of NVIDIA's 2025-2026 Triton security bulletins (HTTP chunked-encoding "
    "overflow, shared-memory chain, authentication bypass, path traversal) and has no request-size limit: anyone who "
    "can reach {host} can crash it or exhaust its memory. Serve beyond this machine only behind a proxy that limits "
    f"request bodies to {MAX_REQUEST_MIB} MiB, or use the chart (a current Triton image).")
