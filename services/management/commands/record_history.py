"""``manage.py record_history``: record every version of every Service of every registered cluster (docs/history.md).

Run one beside each replica of the console (the chart runs it as a second container of the pod; ``make run``
starts one with the development server): one of them, the holder of the database's lock, records; the others wait
to take over. SIGTERM or SIGINT stops it after the versions in progress are stored."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _

from services.recorder import Recorder


class Command(BaseCommand):
    help = "Record the history of every Service of every registered cluster (one active recorder per database)."

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
        self.stdout.write(_("Recording the history of Services (waiting while another recorder holds the lock)."))
        Recorder(stop).run()
        self.stdout.write(_("History recorder stopped."))
