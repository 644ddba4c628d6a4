"""The Celery app Celery's command line loads: ``celery -A tasks.app worker|beat``.

``syncd daemon``, ``syncd worker`` and ``syncd beat`` run exactly that, with
``$SYNCD_CONFIG`` naming the configuration file (default ``./syncd.toml``). Nothing in
``syncd/`` imports this package.
"""

from __future__ import annotations

import os
import sys

from celery import Celery

from syncd import log
from syncd.config import load_settings
from syncd.errors import ConfigError
from tasks.definitions import make_app


def _from_environment() -> Celery:
    config = os.environ.get("SYNCD_CONFIG")
    try:
        settings = load_settings(config) if config else load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"config error: {log.redact(str(exc))}\n")
        raise SystemExit(2) from None
    log.configure(settings.logging.level, settings.logging.format)
    return make_app(settings)


app = _from_environment()
