"""segserve loadtest: load tests of a served model with the real ``perf_analyzer`` (``python -m loadtest``).

It sits beside ``client/`` as a second consumer of the served stage: it reads the model's description from the
server (like the client), builds real image inputs with the client's own pre-processing, drives ``perf_analyzer``
and turns its CSV into a report.
"""

from loadtest.errors import LoadTestError

__all__ = ["LoadTestError"]
