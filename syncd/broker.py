"""The daemon's message broker, as configuration: shared by the workers (``tasks/``)
and by whatever sends them work from outside (``syncd trigger``, the HTTP API).

Two deployments, one code base:

- **embedded** (``[daemon] broker_url = ""``, the default): kombu's ``filesystem://``
  transport (made safe for several writers by ``syncd.fsqueue``), in folders under
  ``daemon.data_dir``. No server: one ``syncd daemon`` process runs the worker and
  beat. The store (SQLite) holds the locks.
- **scale-out** (``broker_url = "redis://..."``): Redis carries the messages, with
  late acknowledgement (a task is acknowledged once done, so a worker killed mid-task
  has it delivered again after ``visibility_timeout``), ``reject_on_worker_lost``, one
  message prefetched per worker thread, and ``celery-redbeat`` keeping beat's
  schedule in Redis with a lock, so exactly one beat is active however many are
  started (``tasks.beat`` makes beat ride out a Redis restart). Redis must persist
  (``appendonly yes``): the store's outbox makes a lost message a delay, not a loss,
  but persistence keeps it short.

Either way the store is the truth: a message is only a prompt to look at a change
row or a trigger request (see ``syncd.service.outbox``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from syncd.config import Settings

#: Task names, as the workers register them (``tasks/``) and senders address them.
RUN_CONNECTOR = "syncd.run_connector"
REFRESH_MIRROR = "syncd.refresh_mirror"
DISPATCH = "syncd.dispatch"
APPLY_CHANGE = "syncd.apply_change"
SWEEP = "syncd.sweep"
PRUNE_AUDIT = "syncd.prune_audit"

#: The embedded broker's transport: kombu's filesystem transport with whole-file writes
#: and a prompt stop (``syncd.fsqueue``).
FILESYSTEM_TRANSPORT = "syncd.fsqueue:Transport"
#: How often the embedded worker looks for messages, seconds (see ``celery_config``).
FILESYSTEM_POLL = 0.05


def broker_folders(settings: Settings) -> dict[str, Path]:
    """The embedded broker's folders under ``daemon.data_dir`` (``control`` holds kombu's
    exchange table, which it would otherwise write to ``./control`` wherever the
    process happens to run)."""
    root = settings.daemon.data_dir / "broker"
    return {
        "queue": root / "queue",
        "processed": root / "processed",
        "control": root / "control",
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's settings for this deployment (see the module)."""
    daemon = settings.daemon
    common: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "enable_utc": True,
        "timezone": "UTC",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": "syncd",
    }
    if daemon.scale_out:
        return {
            **common,
            "broker_url": daemon.broker_url,
            "broker_transport_options": {
                "visibility_timeout": daemon.visibility_timeout,
            },
            "beat_scheduler": "redbeat.RedBeatScheduler",
            "redbeat_redis_url": daemon.broker_url,
            "redbeat_redis_options": {},  # the broker's options are not redbeat's
            "redbeat_key_prefix": "syncd:redbeat:",
            "redbeat_lock_key": "syncd:redbeat:lock",
            "redbeat_lock_timeout": 60,
            "beat_max_loop_interval": 5,
        }
    folders = broker_folders(settings)
    queue = str(folders["queue"])
    return {
        **common,
        "broker_url": daemon.broker_url or "filesystem://localhost/",
        "broker_transport": FILESYSTEM_TRANSPORT if _on_files(daemon.broker_url) else None,
        "broker_transport_options": {
            "data_folder_in": queue,
            "data_folder_out": queue,
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
            "store_processed": False,
            # kombu waits this long whenever it cannot take a message (the queue is empty,
            # or every worker thread is busy): the default second would cap the daemon at
            # a few changes per second.
            "polling_interval": FILESYSTEM_POLL,
        },
        "beat_schedule_filename": str(daemon.data_dir / "beat-schedule"),
        "beat_max_loop_interval": 1,
    }


def _on_files(url: str) -> bool:
    return not url or url.startswith("filesystem://")


def prepare(settings: Settings) -> None:
    """Create the embedded broker's folders (nothing to do when scaling out)."""
    if settings.daemon.scale_out:
        return
    for folder in broker_folders(settings).values():
        folder.mkdir(parents=True, exist_ok=True)


def send(settings: Settings, task: str, *args: Any, **kwargs: Any) -> None:
    """Send one task by name (without importing ``tasks/``): used by ``syncd trigger`` and
    the HTTP API. Raises whatever the broker raises; the caller's store row makes sure
    the work happens anyway (the sweeper takes queued requests)."""
    from celery import Celery  # only where a message is sent

    prepare(settings)
    client = Celery("syncd-client")
    client.conf.update(celery_config(settings))
    try:
        client.send_task(task, args=list(args), kwargs=kwargs)
    finally:
        client.close()
