"""tritonserver's log, kept and read: every line goes on to the terminal (or a file), and the error lines are kept so
that a failed start says which model failed and why instead of only an exit code.

Triton log lines start with a severity letter and the date: ``E1129 05:40:01.123456 4242 model_lifecycle.cc:654]
"failed to load 'unet' version 1: Internal: ..."`` (core src/model_lifecycle.cc, r24.10 = Triton 2.51).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from typing import BinaryIO, TextIO

ERROR_LINE = re.compile(r"^E\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ?(?P<text>.*)$")
FAILED_TO_LOAD = re.compile(r"failed to load '(?P<model>[^']+)' version (?P<version>\d+): (?P<cause>.*)")
# Lines of the shutdown countdown and of the summary table say nothing new about the cause.
NOISE = re.compile(r"^(Timeout \d+: Found|\|)|CudaDriverHelper has not been initialized")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"')
    return text.split("\\n")[0].strip()  # the first line: the cause, not the Python traceback after it


class LogPump:
    """Reads tritonserver's combined stdout/stderr in a thread, writes each line to ``sink``, keeps the errors."""

    def __init__(self, stream: BinaryIO, sink: TextIO | BinaryIO | None) -> None:
        self.errors: list[str] = []
        self.failed_models: dict[str, str] = {}
        self.tail: deque[str] = deque(maxlen=50)
        self._stream = stream
        self._sink = sink
        self._text_sink = hasattr(sink, "encoding")  # a terminal or StringIO takes str; a log file opened "ab" bytes
        self._thread = threading.Thread(target=self._run, name="tritonserver-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for raw in iter(self._stream.readline, b""):
            text = raw.decode(errors="replace")
            if self._sink is not None:
                try:
                    self._sink.write(text if self._text_sink else raw)
                    self._sink.flush()
                except (OSError, ValueError):  # the terminal went away: keep reading so Triton never blocks
                    self._sink = None
            line = text.rstrip()
            if not line or NOISE.search(line):
                continue
            self.tail.append(line)
            match = ERROR_LINE.match(line)
            if match:
                text = _unquote(match["text"])
                self.errors.append(text)
                failed = FAILED_TO_LOAD.search(text)
                if failed:
                    self.failed_models[failed["model"]] = failed["cause"].strip()

    def join(self, timeout_s: float = 5.0) -> None:
        self._thread.join(timeout_s)

    def summary(self) -> str:
        """The failure in a few lines: each model that failed to load with its cause, else Triton's error lines."""
        if self.failed_models:
            return "; ".join(f"model `{m}` failed to load: {c}" for m, c in sorted(self.failed_models.items()))
        if self.errors:
            return "; ".join(dict.fromkeys(self.errors))  # unique, in order
        return ""
