"""The service functions every face of syncd calls (CLI, HTTP API, Celery tasks, tests)."""

from syncd.service.apply import ApplyReport, apply_change, apply_pending
from syncd.service.ingest import BatchReport, IngestReport, ingest
from syncd.service.policy import build_policy
from syncd.service.runs import Runner, RunResult, build_connectors

__all__ = [
    "ApplyReport",
    "BatchReport",
    "IngestReport",
    "RunResult",
    "Runner",
    "apply_change",
    "apply_pending",
    "build_connectors",
    "build_policy",
    "ingest",
]
