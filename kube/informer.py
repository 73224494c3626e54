"""A namespace's objects of one kind kept current by list + watch, so list pages need no API call.

An ``Informer`` lists the namespace once (in chunks), then follows a watch from the list's resourceVersion in a
daemon thread, applying every ADDED / MODIFIED / DELETED event and bookmark. Readers get a sorted snapshot, or
``None`` whenever the informer cannot vouch for it, and then ask the API server as before:

* not yet listed, or the watch failed (the informer relists before it answers again);
* behind a write this user made through the console: the caller passes the written object's resourceVersion and
  the uids it deleted, and the snapshot waits (briefly) until the watch has delivered them. ResourceVersions of
  one resource are comparable integers since Kubernetes v1.35 (KEP-5504), which is what makes this check sound.

Changes made elsewhere (kubectl, controllers) appear once the watch delivers them: the same delay a watch-based
client such as kubectl ``get -w`` sees, measured by ``make bench``. The informer never serves detail pages or
edits: those read the live object, and writes carry its resourceVersion, so nothing is written from the cache.

Informers are per process (one per gunicorn worker) and bounded: ``MAX_INFORMERS`` per process (least recently
read stopped first), and an informer nobody read for ``IDLE_SECONDS`` stops (checked when a watch ends). Each
holds its own connection.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Collection, Hashable
from typing import Any

from kubernetes import client
from prometheus_client import Counter, Gauge

from kube.client import ClusterRef, ClusterUnavailable, Kind, Lister, Slim, unavailable_message, watch_client_for
from kube.config import KubeconfigError
from kube.identity import cache_identity, cluster_name

log = logging.getLogger(__name__)

# Under gunicorn each worker process holds its own informers: "livesum" adds the live workers' values up and drops
# a dead worker's (``console/gunicorn.py``). Labels are bounded: registered cluster names and the kinds followed.
INFORMERS = Gauge(
    "console_informers",
    "Informers by cluster, kind and state: synced (answering), unsynced (listing, or relisting after a failed "
    "watch) or failed (gave up after repeated failures; resting before a restart).",
    ["cluster", "kind", "state"],
    multiprocess_mode="livesum",
)
WATCHES_HELD = Gauge(
    "console_watches_held",
    "Watch connections open to a cluster's API server.",
    ["cluster"],
    multiprocess_mode="livesum",
)
WATCHES_OPENED = Counter("console_watches_opened_total", "Watches opened on a cluster's API server.", ["cluster"])

LIST_CHUNK = 500
# The API server ends each watch after this and the informer resumes from its resourceVersion. Short, so that a
# connection that dies silently (no reset, no bookmark) is noticed within WATCH_SECONDS + WATCH_GRACE: the read
# times out, the informer stops answering and the pages ask the API server.
WATCH_SECONDS = 60
WATCH_GRACE = 15
IDLE_SECONDS = 600
MAX_INFORMERS = 64
RETRY_DELAYS = (0.2, 1.0, 3.0)  # between failed rounds; after the last, the informer ends
RESTART_AFTER = 30.0  # seconds before an informer that ended failing is started again


def _keep_out_of_full_collections() -> None:
    """After a list: move every object the process holds so far (the listed objects among them) out of the garbage
    collector's sight (``gc.freeze``). A full collection walks every tracked object: with 10,000 cached Services
    (about 60 dicts and lists each) that is a stall of a few hundred milliseconds in whichever request triggers it,
    for objects that are never part of a cycle (JSON) and are freed by their reference count when a watch event
    replaces them. The collector still runs on everything made after the freeze. The young generations are
    collected first, so only cyclic garbage that already reached the oldest generation (rare: it survived two
    collections) is kept with them, once per list."""
    gc.collect(1)
    gc.freeze()


def _key(metadata: dict) -> tuple[str, str]:
    """Objects are kept by namespace and name: a cluster-wide informer holds equal names from several namespaces."""
    return metadata.get("namespace", ""), metadata["name"]


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Informer:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        lister: Lister,
        slim: Slim,
        *,
        cluster: str = "",
        kind: str = "",
    ) -> None:
        self.namespace = namespace
        self._labels = (cluster, kind)  # for the metrics only
        self._state: str | None = None
        self._state_lock = threading.Lock()
        self._retired = False
        self._client = api_client
        self._list = lister(api_client)
        self._slim = slim
        self._changed = threading.Condition()
        self._items: dict[tuple[str, str], dict] = {}
        self._uids: set[str] = set()
        self._sorted: list[dict] | None = None
        self._resource_version = 0
        self._version: str | None = None  # see ``version``; None until asked after a change
        self._synced = False
        self._failing = False  # the last list or watch failed; cleared by the next complete list
        self._stopped = threading.Event()
        self._last_read = time.monotonic()
        self.ended_at: float | None = None
        self.failed = False  # ended because the API server kept refusing or failing, not for being idle
        self.started_at = time.monotonic()
        self.first_sync_seconds: float | None = None  # from the start to the first complete list
        self.lists = 0  # complete lists so far: 1, unless the watch failed or its resourceVersion expired
        self.watches = 0  # watches opened so far (the API server ends each after WATCH_SECONDS)
        self._response: Any = None
        self._set_state("unsynced")
        self._thread = threading.Thread(target=self._run, name=f"informer:{namespace}", daemon=True)
        self._thread.start()

    # --- readers ------------------------------------------------------------------------------------------------

    def snapshot(self, *, at_least: int = 0, without: Collection[str] = (), wait: float = 0.0) -> list[dict] | None:
        """The objects sorted by namespace and name (a shared list: do not change it or its items), or None when the informer is
        not synced, or has not seen resourceVersion ``at_least`` and the deletion of every uid in ``without``
        within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        with self._changed:
            self._last_read = time.monotonic()
            while not (self._synced and self._resource_version >= at_least and self._uids.isdisjoint(without)):
                remaining = deadline - time.monotonic()
                # A list or watch that just failed is retried after a pause: a reader does not wait through it,
                # and its own call (to a cluster that refuses or cannot be reached) answers at once.
                if remaining <= 0 or self._stopped.is_set() or self._failing:
                    return None
                self._changed.wait(remaining)
            if self._sorted is None:
                self._sorted = [self._items[key] for key in sorted(self._items)]
            return self._sorted

    def item(self, namespace: str, name: str) -> dict | None:
        """One object of the copy (do not change it), or None when it holds none by that name or cannot vouch."""
        with self._changed:
            self._last_read = time.monotonic()
            return self._items.get((namespace, name)) if self._synced else None

    @property
    def running(self) -> bool:
        return not self._stopped.is_set()

    @property
    def synced(self) -> bool:
        return self._synced

    @property
    def version(self) -> str | None:
        """Changes whenever the objects do: what a live page compares to know whether to redraw. None while the
        informer cannot vouch for its copy.

        It is the highest resourceVersion among the objects and their number. An add or a change brings a
        resourceVersion higher than any before it, and a delete lowers the number, so every change moves it; and it
        depends on the objects only, so each worker process's informer of the same namespace gives the same
        answer (the list's own resourceVersion would not: it follows every write in the cluster)."""
        with self._changed:
            # An open page that only polls is a reader too: without this its informer would stop after
            # IDLE_SECONDS and the next poll would list the namespace again and redraw.
            self._last_read = time.monotonic()
            if not self._synced:
                return None
            if self._version is None:
                newest = max((int(item["metadata"]["resourceVersion"]) for item in self._items.values()), default=0)
                self._version = f"{newest}.{len(self._items)}"
            return self._version

    def stop(self) -> None:
        self._stopped.set()
        self._retire()
        self._unsync()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed
                response.shutdown()  # wakes the thread blocked reading the watch
        with self._changed:
            self._changed.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # --- the thread ---------------------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stopped.is_set() and time.monotonic() - self._last_read < IDLE_SECONDS:
                try:
                    if not self._synced:
                        self._relist()
                    self._watch()
                    failures = 0
                except _Gone:
                    self._unsync()
                except Exception as error:  # noqa: BLE001 - whatever failed, the cache stops answering
                    self._failing = True
                    self._unsync()
                    if self._stopped.is_set():
                        break
                    log.info(
                        "watch of %s stopped: %s",
                        self.namespace,
                        unavailable_message(error),
                        extra={"cluster": self._labels[0]},
                    )
                    if failures == len(RETRY_DELAYS):
                        self.failed = True
                        break
                    self._stopped.wait(RETRY_DELAYS[failures])
                    failures += 1
        finally:
            self._unsync()
            self._stopped.set()
            self._set_state("failed" if self.failed else None)
            self.ended_at = time.monotonic()
            with self._changed:
                self._changed.notify_all()
            self._client.rest_client.pool_manager.clear()

    def _timeout(self, read: float) -> tuple[float, float]:
        from django.conf import settings

        return (settings.KUBE_CONNECT_TIMEOUT, read)

    def _relist(self) -> None:
        from django.conf import settings

        items: dict[tuple[str, str], dict] = {}
        token = None
        while True:
            kwargs = {"_continue": token} if token else {}
            response = self._list(
                self.namespace,
                limit=LIST_CHUNK,
                _preload_content=False,
                _request_timeout=self._timeout(settings.KUBE_READ_TIMEOUT),
                **kwargs,
            )
            page = json.loads(response.data)
            for item in page["items"]:
                items[_key(item["metadata"])] = self._slim(item)
            token = page["metadata"].get("continue")
            if not token:
                break
        with self._changed:
            self._items = items
            self._uids = {item["metadata"]["uid"] for item in items.values()}
            self._sorted = None
            self._resource_version = int(page["metadata"]["resourceVersion"])
            self._version = None
            self._failing = False
            self._synced_now()
            self.lists += 1
            if self.first_sync_seconds is None:
                self.first_sync_seconds = time.monotonic() - self.started_at
            self._changed.notify_all()
        _keep_out_of_full_collections()

    def _watch(self) -> None:
        """Follow one watch until the server ends it; raise when it fails."""
        try:
            response = self._list(
                self.namespace,
                watch=True,
                resource_version=str(self._resource_version),
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _preload_content=False,
                _request_timeout=self._timeout(WATCH_SECONDS + WATCH_GRACE),
            )
        except client.ApiException as error:
            if error.status == 410:
                raise _Gone from None
            raise
        self._response = response
        self.watches += 1
        WATCHES_OPENED.labels(self._labels[0]).inc()
        held = WATCHES_HELD.labels(self._labels[0])
        held.inc()
        ended = False
        try:
            if self._stopped.is_set():  # stop() ran while the request was being sent
                return
            pending = b""
            for chunk in response.stream(amt=None, decode_content=False):
                if self._stopped.is_set():
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._apply(json.loads(line))
            ended = True
        finally:
            held.dec()
            self._response = None
            if ended:
                response.release_conn()
            else:
                response.close()  # left mid-stream: the connection still carries the watch, so it is not reused

    def _apply(self, event: dict) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise ClusterUnavailable(obj.get("message") or "watch error")
        metadata = obj["metadata"]
        with self._changed:
            if kind in ("ADDED", "MODIFIED"):
                old = self._items.get(_key(metadata))
                if old is not None:
                    self._uids.discard(old["metadata"]["uid"])
                self._items[_key(metadata)] = self._slim(obj)
                self._uids.add(metadata["uid"])
                self._sorted = None
            elif kind == "DELETED":
                old = self._items.pop(_key(metadata), None)
                if old is not None:
                    self._uids.discard(old["metadata"]["uid"])
                self._sorted = None
            self._resource_version = int(metadata["resourceVersion"])
            if kind != "BOOKMARK":
                self._version = None
            self._changed.notify_all()

    def _unsync(self) -> None:
        with self._changed:
            self._synced = False
            self._changed.notify_all()
        self._set_state("unsynced")

    def _synced_now(self) -> None:
        """After a complete list: answer again, unless stop() came meanwhile."""
        self._synced = not self._stopped.is_set()
        if self._synced:
            self._set_state("synced")

    # --- the metrics ----------------------------------------------------------------------------------------------

    def _set_state(self, state: str | None) -> None:
        """Count this informer in ``state`` of ``INFORMERS`` (None: in none, once it ended without failing or was
        stopped by its owner)."""
        with self._state_lock:
            state = None if self._retired else state
            if state == self._state:
                return
            if self._state is not None:
                INFORMERS.labels(*self._labels, self._state).dec()
            if state is not None:
                INFORMERS.labels(*self._labels, state).inc()
            self._state = state

    def _retire(self) -> None:
        with self._state_lock:
            self._retired = True
        self._set_state(None)


class Informers:
    """The process's informers, one per (cluster, credentials version, kind, namespace)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._informers: OrderedDict[Hashable, Informer] = OrderedDict()

    def get(self, cluster: ClusterRef, kind: Kind, namespace: str = "") -> Informer | None:
        """The running informer, started on first use (it answers once it has listed); None while one that kept
        failing rests, or when the cluster's credentials cannot be read."""
        key = (cluster.pk, cluster.credentials_version, kind.name, namespace)
        with self._lock:
            informer = self._informers.get(key)
            if informer is not None:
                self._informers.move_to_end(key)
                if informer.running:
                    return informer
                ended = informer.ended_at
                if informer.failed and ended is not None and time.monotonic() - ended < RESTART_AFTER:
                    return None
            retired = [k for k in self._informers if k[0] == cluster.pk and k[1] != cluster.credentials_version]
            while len(self._informers) - len(retired) >= MAX_INFORMERS:
                retired.append(next(k for k in self._informers if k not in retired))
            stopping = [self._informers.pop(k) for k in retired]
            if informer is not None and not informer.running:
                stopping.append(informer)  # ended (idle or failed and rested): replaced below
        for old in stopping:
            old.stop()
        try:
            # One copy for every reader, so the watch runs as the console's read-only identity; each reader's
            # right to see it is asked of the cluster (``kube.identity.allowed``) by the caller.
            api_client = watch_client_for(cluster, cache_identity())
        except (ClusterUnavailable, KubeconfigError):
            return None
        informer = Informer(
            api_client, namespace, kind.lister, kind.slim, cluster=cluster_name(cluster), kind=kind.name
        )
        with self._lock:
            raced = self._informers.get(key)
            if raced is not None and raced.running:
                informer.stop()
                return raced
            self._informers[key] = informer
        return informer

    def peek(self, cluster: ClusterRef, kind: Kind, namespace: str = "") -> Informer | None:
        """The running informer, if there is one; none is started."""
        with self._lock:
            informer = self._informers.get((cluster.pk, cluster.credentials_version, kind.name, namespace))
        return informer if informer is not None and informer.running else None

    def snapshot(self, cluster: ClusterRef, kind: Kind, namespace: str = "", **conditions: Any) -> list[dict] | None:
        """``Informer.snapshot`` of the (started on first use) informer, or None when there is none to ask: the
        caller then asks the API server."""
        informer = self.get(cluster, kind, namespace)
        return informer.snapshot(**conditions) if informer is not None else None

    def clear(self) -> None:
        with self._lock:
            informers, self._informers = list(self._informers.values()), OrderedDict()
        for informer in informers:
            informer.stop()
        for informer in informers:
            informer.join(5)


informers = Informers()
