"""The limits of one ``engage serve`` worker (what they answer: :mod:`serving.server`) and the
CPUs the workers are sized by.

A module of their own, so that ``engage serve --help`` can show their defaults without
importing the server (pandas, MLflow's app).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ServerLimits:
    """Limits of one server worker (``engage serve`` options; see :mod:`serving.server`)."""

    max_body_bytes: int = 16 * 2**20
    heavy_body_bytes: int = 256 * 2**10
    request_timeout: float = 60.0
    body_timeout: float = 15.0
    light_concurrency: int = 2
    heavy_concurrency: int = 1
    heavy_queue: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0 and f.name != "heavy_queue":
                raise ValueError(f"{f.name} must be positive, got {getattr(self, f.name)}")
        if self.heavy_queue < 0:
            raise ValueError(f"heavy_queue must be 0 or more, got {self.heavy_queue}")

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, text: str | None) -> ServerLimits:
        return cls(**json.loads(text)) if text else cls()


def machine_cpus() -> int:
    """CPUs this process may run on (the affinity mask, as containers and taskset set it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
