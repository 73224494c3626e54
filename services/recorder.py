"""The history recorder: every change of every Service in every registered cluster, stored once as a
``ServiceVersion`` (``manage.py record_history``; docs/history.md).

One recorder is active per console deployment, whatever the number of replicas: each replica may run one, and the
one holding the database's lock records while the others wait to take over (``recorder_lock``: a PostgreSQL
advisory lock, or a file lock beside the SQLite database). It does not depend on anyone having a page open.

Per cluster, a thread follows one watch of the Services of every namespace, as the console's read-only cache
identity. Every event is stored in one transaction with the cluster's checkpoint (the resourceVersion reached), so
after a restart the watch resumes exactly there and the API server replays what happened meanwhile: nothing
stored twice (a version is unique per cluster, uid and resourceVersion) and nothing missed. Only when the API server
no longer has the events (410 Gone: the recorder was away longer than it keeps them) is the cluster listed again
and compared with what is stored; what changed meanwhile is stored as one version marked ``after_gap``.

A change of status only (a load balancer's address) is not a version: status is not stored.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone
from kubernetes import client
from prometheus_client import Counter, Histogram

from clusters.models import Cluster
from kube.client import unavailable_message, watch_client_for
from kube.identity import cache_identity
from services import history
from services.models import RecorderCheckpoint, ServiceVersion

log = logging.getLogger(__name__)

LIST_CHUNK = 500
WATCH_SECONDS = 300  # the API server ends each watch after this; the recorder resumes from its checkpoint
WATCH_GRACE = 30  # silence longer than the watch and this (no event, no bookmark) is a dead connection
RETRY_DELAYS = (0.5, 2.0, 5.0, 15.0, 30.0)  # between failed rounds; the last one repeats
CLUSTERS_EVERY = 10.0  # seconds between looks at the registered clusters (added, removed, new credentials)
PRUNE_EVERY = 3600.0  # seconds between removals of versions older than the retention age
LOCK_EVERY = 5.0  # seconds between attempts of a standby recorder to take the lock
# The advisory lock's key: any fixed 64-bit number the console's database uses for nothing else.
LOCK_KEY = zlib.crc32(b"kube-service-console history recorder")

VERSIONS = Counter("console_history_versions_total", "Service versions stored by the recorder.", ["cluster", "change"])
LAG = Histogram(
    "console_history_lag_seconds",
    "From the change's time in managedFields (whole seconds) to the version stored.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300),
)


# --- one active recorder --------------------------------------------------------------------------------------


@contextlib.contextmanager
def recorder_lock(stop: threading.Event) -> Iterator[bool]:
    """Wait until this process holds the recorder's lock (or ``stop`` is set: yields False).

    PostgreSQL: a session advisory lock on this thread's connection. The server releases it the moment the
    connection ends, so a recorder that dies hands over within LOCK_EVERY seconds, with no lease to expire and no
    clock to trust; and the lock lives in the database the versions are written to. (A Kubernetes Lease would need
    one cluster to hold it, and rights there, for the history of all clusters.) A pooler in transaction mode
    between the console and PostgreSQL would break session locks: the recorder needs a direct connection.
    SQLite (one machine, ``make run``): an exclusive flock on a file beside the database."""
    if connection.vendor == "postgresql":
        while not stop.is_set():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
                (held,) = cursor.fetchone()
            if held:
                try:
                    yield True
                finally:
                    with contextlib.suppress(Exception), connection.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
                return
            stop.wait(LOCK_EVERY)
        yield False
        return
    path = settings.DATA_DIR / "history-recorder.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        while not stop.is_set():
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                stop.wait(LOCK_EVERY)
                continue
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return
        yield False


def still_holds_lock() -> bool:
    """Whether this thread's connection still holds the advisory lock (PostgreSQL; always True elsewhere)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
            "AND ((classid::bigint << 32) | objid::bigint) = %s",
            [LOCK_KEY],
        )
        (count,) = cursor.fetchone()
    return count > 0


# --- storing versions ------------------------------------------------------------------------------------------


class _Gone(Exception):
    """The API server no longer has the events after the checkpoint."""


class _Known:
    """The newest stored version of one object, as far as this recorder needs it. The object is kept as
    compressed JSON (about a tenth of the dict's memory: a recorder holds one per Service of every cluster)."""

    __slots__ = ("resource_version", "change", "_packed", "managed")

    def __init__(self, resource_version: str, change: str, manifest: dict, managed: list[dict] | None = None) -> None:
        self.resource_version, self.change, self.managed = resource_version, change, managed
        self._packed = zlib.compress(json.dumps(manifest, separators=(",", ":")).encode(), 1)

    @property
    def manifest(self) -> dict:
        return json.loads(zlib.decompress(self._packed))


@dataclass
class ClusterRecorder:
    """Records one cluster's Services until ``stop`` is set. ``run`` never raises: failures are logged and the
    watch is tried again after a pause."""

    cluster: Cluster
    stop: threading.Event = field(default_factory=threading.Event)
    known: dict[str, _Known] = field(default_factory=dict)  # uid -> newest stored version
    events: int = 0
    stored: int = 0
    _response: object = None

    def halt(self) -> None:
        """Stop recording: the watch in progress is closed, so the thread ends without waiting for an event."""
        self.stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed
                response.shutdown()  # wakes the thread blocked reading the watch

    def run(self) -> None:
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    checkpoint = self._checkpoint()
                    if checkpoint is None:
                        checkpoint = self.relist(after_gap=False)
                    self._watch(checkpoint)
                    failures = 0
                except _Gone:
                    log.info("history of %s: the API server no longer has the events; relisting", self.cluster.name)
                    self.relist(after_gap=True)
                except Exception as error:  # noqa: BLE001 - whatever failed, try again after a pause
                    # What this thread remembers may hold a version whose transaction rolled back, and its
                    # database connection may be dead (Django replaces a broken one only inside atomic()): both are
                    # dropped, so the retry reads the stored versions again on a new connection.
                    self.known = {}
                    connection.close()
                    if self.stop.is_set():
                        break
                    log.warning(
                        "history of %s: %s",
                        self.cluster.name,
                        unavailable_message(error),
                        extra={"cluster": self.cluster.name},
                    )
                    self.stop.wait(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])
                    failures += 1
        finally:
            close_old_connections()
            connection.close()

    # -- the API server --

    def _api(self) -> client.CoreV1Api:
        return client.CoreV1Api(watch_client_for(self.cluster, cache_identity()))

    def _checkpoint(self) -> str | None:
        found = RecorderCheckpoint.objects.filter(cluster=self.cluster).values_list("resource_version", flat=True)
        return next(iter(found), None)

    def relist(self, *, after_gap: bool) -> str:
        """List every Service and store what differs from the newest stored versions (objects new, changed or gone);
        return the list's resourceVersion, stored as the checkpoint. The list is read in chunks (one consistent
        snapshot) and each chunk stored before the next is read, so memory holds one chunk, not the cluster."""
        api, token, listed = self._api(), None, set()
        newest = self._newest_stored()
        self.known = dict(newest)
        with transaction.atomic():
            while True:
                kwargs = {"_continue": token} if token else {}
                response = api.list_service_for_all_namespaces(
                    limit=LIST_CHUNK,
                    _preload_content=False,
                    _request_timeout=(settings.KUBE_CONNECT_TIMEOUT, max(settings.KUBE_READ_TIMEOUT, 30)),
                    **kwargs,
                )
                page = json.loads(response.data)
                for item in page["items"]:
                    uid = item["metadata"]["uid"]
                    listed.add(uid)
                    before = newest.get(uid)
                    if before is None or before.change == ServiceVersion.Change.DELETED:
                        self._store(item, ServiceVersion.Change.FOUND, before, after_gap=after_gap)
                    elif before.resource_version != item["metadata"]["resourceVersion"]:
                        self._store(item, ServiceVersion.Change.CHANGED, before, after_gap=after_gap)
                token = page["metadata"].get("continue")
                if not token:
                    break
            listed_at = page["metadata"]["resourceVersion"]
            for uid, before in newest.items():
                if uid not in listed and before.change != ServiceVersion.Change.DELETED:
                    gone = {**before.manifest, "metadata": {**before.manifest.get("metadata", {}), "uid": uid}}
                    self._store(gone, ServiceVersion.Change.DELETED, before, after_gap=True, resource_version=listed_at)
            self._save_checkpoint(listed_at)
        return listed_at

    def _newest_stored(self) -> dict[str, _Known]:
        """The newest stored version of every object of this cluster (one query)."""
        rows = (
            ServiceVersion.objects.filter(cluster=self.cluster)
            .order_by("uid", "-id")
            .values_list("uid", "resource_version", "change", "manifest", "managed")
        )
        newest: dict[str, _Known] = {}
        for uid, resource_version, change, manifest, managed in rows.iterator(chunk_size=2000):
            if uid not in newest:
                newest[uid] = _Known(resource_version, change, manifest, managed)
        return newest

    def record_until(self, resource_version: str, timeout: float = 30.0) -> None:
        """Record in this thread until the checkpoint reaches ``resource_version`` (the resourceVersion of a write:
        comparable integers since Kubernetes v1.35, KEP-5504), resuming from the checkpoint as a restarted recorder
        does; TimeoutError after ``timeout`` seconds."""
        target, deadline = int(resource_version), time.monotonic() + timeout
        while True:
            checkpoint = self._checkpoint() or self.relist(after_gap=False)
            if int(checkpoint) >= target:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the history of {self.cluster.name} did not reach {resource_version}")
            try:
                self._watch(checkpoint, until=target, seconds=max(1, int(deadline - time.monotonic())))
            except _Gone:
                self.relist(after_gap=True)

    def _watch(self, checkpoint: str, *, until: int | None = None, seconds: int = WATCH_SECONDS) -> None:
        """Follow one watch from ``checkpoint`` until the server ends it (or the event at ``until`` is stored);
        raise when it fails."""
        api = self._api()
        try:
            response = api.list_service_for_all_namespaces(
                watch=True,
                resource_version=checkpoint,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                _request_timeout=(settings.KUBE_CONNECT_TIMEOUT, WATCH_SECONDS + WATCH_GRACE),
            )
        except client.ApiException as error:
            if error.status == 410:
                raise _Gone from None
            raise
        self._response = response
        ended = False
        try:
            if self.stop.is_set():  # halted while the request was being sent
                return
            pending = b""
            for chunk in response.stream(amt=None, decode_content=False):
                if self.stop.is_set():
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        reached = self.apply(json.loads(line))
                        if until is not None and reached >= until:
                            return
            ended = True
        finally:
            self._response = None
            if ended:
                response.release_conn()
            else:
                response.close()

    # -- the events --

    def apply(self, event: dict) -> int:
        """Store one watch event (with the checkpoint, in one transaction); the resourceVersion reached."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise RuntimeError(obj.get("message") or "watch error")
        self.events += 1
        metadata = obj.get("metadata") or {}
        resource_version = str(metadata.get("resourceVersion", ""))
        uid = metadata.get("uid", "")
        remembered = self.known.get(uid)
        try:
            self._apply_in_transaction(kind, metadata, obj, resource_version)
        except BaseException:
            # Rolled back: the memo must not claim a version the database does not hold (the replayed event
            # would then be taken for one already stored).
            if remembered is None:
                self.known.pop(uid, None)
            else:
                self.known[uid] = remembered
            raise
        return int(resource_version or 0)

    def _apply_in_transaction(self, kind: str, metadata: dict, obj: dict, resource_version: str) -> None:
        with transaction.atomic():
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                uid = metadata["uid"]
                before = self.known.get(uid) or self._newest_of(uid)
                if kind == "DELETED":
                    if before is None or before.change != ServiceVersion.Change.DELETED:
                        self._store(obj, ServiceVersion.Change.DELETED, before)
                elif before is None or before.change == ServiceVersion.Change.DELETED:
                    self._store(obj, ServiceVersion.Change.CREATED, before)
                elif before.resource_version != resource_version:
                    self._store(obj, ServiceVersion.Change.CHANGED, before)
            if resource_version:
                self._save_checkpoint(resource_version)

    def _newest_of(self, uid: str) -> _Known | None:
        row = (
            ServiceVersion.objects.filter(cluster=self.cluster, uid=uid)
            .order_by("-id")
            .values_list("resource_version", "change", "manifest", "managed")
            .first()
        )
        return _Known(*row) if row else None

    def _store(
        self,
        obj: dict,
        change: str,
        before: _Known | None,
        *,
        after_gap: bool = False,
        resource_version: str = "",
    ) -> None:
        """Store a version unless nothing but status changed; remember it as the object's newest."""
        metadata = obj.get("metadata") or {}
        uid = metadata["uid"]
        resource_version = resource_version or str(metadata.get("resourceVersion", ""))
        stored = history.stored_form(obj)
        previous = before.manifest if before else None
        fields = history.changed_fields(previous, stored) if change != ServiceVersion.Change.DELETED else []
        managed = history.managed_signature(obj) if change != ServiceVersion.Change.DELETED else []
        if change == ServiceVersion.Change.CHANGED and not fields:
            # Status only: the newest version stands for this resourceVersion too.
            self.known[uid] = _Known(resource_version, before.change if before else change, stored, managed)
            return
        now = timezone.now()
        if change == ServiceVersion.Change.DELETED:
            when, makers = None, []
        else:
            when, makers = history.change_makers(obj, before.managed if before else None)
        try:
            with transaction.atomic():
                ServiceVersion.objects.create(
                    cluster=self.cluster,
                    namespace=metadata.get("namespace", ""),
                    name=metadata.get("name", ""),
                    uid=uid,
                    resource_version=resource_version,
                    change=change,
                    changed_at=when or now,
                    managers=makers,
                    fields=fields,
                    managed=managed,
                    manifest=stored,
                    after_gap=after_gap,
                )
        except IntegrityError:
            pass  # stored already (by this recorder before a restart, or by another that held the lock before)
        else:
            self.stored += 1
            VERSIONS.labels(self.cluster.name, change).inc()
            if when is not None:
                LAG.observe(max(0.0, (now - when).total_seconds()))
            if before is not None:  # an object's first version needs no trimming (the initial sync stores 10,000)
                self._keep_at_most(uid)
        self.known[uid] = _Known(resource_version, change, stored, managed)

    def _keep_at_most(self, uid: str) -> None:
        limit = settings.HISTORY_MAX_VERSIONS
        oldest_kept = (
            ServiceVersion.objects.filter(cluster=self.cluster, uid=uid)
            .order_by("-id")
            .values_list("id", flat=True)[limit - 1 : limit]
        )
        boundary = next(iter(oldest_kept), None)
        if boundary is not None:
            ServiceVersion.objects.filter(cluster=self.cluster, uid=uid, id__lt=boundary).delete()

    def _save_checkpoint(self, resource_version: str) -> None:
        # One UPDATE per event; the row is made by the first relist.
        if not RecorderCheckpoint.objects.filter(cluster=self.cluster).update(resource_version=resource_version):
            RecorderCheckpoint.objects.create(cluster=self.cluster, resource_version=resource_version)


# --- the process -----------------------------------------------------------------------------------------------


def prune(now: datetime.datetime | None = None) -> int:
    """Remove versions older than the retention age (HISTORY_MAX_AGE_DAYS); the number removed."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=settings.HISTORY_MAX_AGE_DAYS)
    removed, _by_model = ServiceVersion.objects.filter(recorded_at__lt=cutoff).delete()
    return removed


class Recorder:
    """The recorder of all registered clusters: one ClusterRecorder thread per cluster, started and stopped as
    clusters are registered, removed or given new credentials; old versions pruned hourly."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self.running: dict[int, tuple[int, ClusterRecorder, threading.Thread]] = {}

    def follow_clusters(self) -> None:
        wanted = {cluster.pk: cluster for cluster in Cluster.objects.all()}
        for pk, (version, recorder, thread) in list(self.running.items()):
            cluster = wanted.get(pk)
            if cluster is None or cluster.credentials_version != version or not thread.is_alive():
                recorder.halt()
                thread.join(timeout=WATCH_GRACE)
                if not thread.is_alive():  # else (a relist in progress) the next round looks again: never two
                    del self.running[pk]
        for pk, cluster in wanted.items():
            if pk not in self.running:
                recorder = ClusterRecorder(cluster)
                thread = threading.Thread(target=recorder.run, name=f"history-{cluster.name}", daemon=True)
                thread.start()
                self.running[pk] = (cluster.credentials_version, recorder, thread)

    def run(self) -> None:
        """Record until ``stop`` is set, while this process holds the lock (waiting for it first)."""
        with recorder_lock(self.stop) as held:
            if not held:
                return
            log.info("history recorder active")
            pruned_at = 0.0
            try:
                while not self.stop.is_set():
                    if not still_holds_lock():
                        log.warning("history recorder lost its database lock; stopping")
                        break
                    self.follow_clusters()
                    if time.monotonic() - pruned_at > PRUNE_EVERY:
                        pruned = prune()
                        if pruned:
                            log.info("history: %d versions past the retention age removed", pruned)
                        pruned_at = time.monotonic()
                    self.stop.wait(CLUSTERS_EVERY)
            finally:
                for _version, recorder, _thread in self.running.values():
                    recorder.halt()
                for _version, _recorder, thread in self.running.values():
                    thread.join(timeout=WATCH_GRACE)
                self.running.clear()
