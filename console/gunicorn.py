"""gunicorn's configuration for the console: ``gunicorn -c python:console.gunicorn console.wsgi``.

Metrics. Each worker is a process of its own, so prometheus_client's multiprocess mode is used: every worker writes
its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape, answered by any worker, adds them up. The folder
must be set before a worker imports prometheus_client and must start empty (a restarted container keeps an
``emptyDir``), so it is set and emptied here, in the master, before any worker starts: the operator's folder when
``PROMETHEUS_MULTIPROC_DIR`` is set, else a private temporary one removed at exit. When a worker exits, its
"live" gauges (informers, watches held) are removed so they stop counting; its counters and histograms stay, as
Prometheus expects of counters.

Logs. gunicorn's own lines (start-up, worker timeouts) are written in the console's format (``console.logs``):
JSON in production. Its access log stays off: the console writes one ``request finished`` line per request, with
the request id.

Any other gunicorn setting is given on the command line as usual (``--workers``, ``--bind``, ``--timeout``).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile

from console import logs
from gunicorn import glogging

_own_folder = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_folder:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="console-metrics-")
METRICS_FOLDER = os.environ["PROMETHEUS_MULTIPROC_DIR"]

accesslog = None


class ConsoleLogger(glogging.Logger):
    """gunicorn's logger, with its lines in the console's format (the handlers and their targets are gunicorn's:
    ``--error-logfile`` and ``--log-level`` work as usual)."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        line_format = logs.formatter(logs.format_from_environment())
        for handler in [*self.error_log.handlers, *self.access_log.handlers]:
            handler.setFormatter(line_format)


logger_class = ConsoleLogger


def on_starting(server) -> None:
    """Empty the metrics folder of an earlier run (a folder the operator set is emptied of sample files only)."""
    os.makedirs(METRICS_FOLDER, exist_ok=True)
    for path in glob.glob(os.path.join(METRICS_FOLDER, "*.db")):
        os.remove(path)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _own_folder:
        shutil.rmtree(METRICS_FOLDER, ignore_errors=True)
