"""A Service's stored history as the pages read it: its versions, who made each change (the console user and request
id of the console's own writes, else the field managers that made it), the version a restore or an undelete starts
from, and the last change of every Service of a list page in one query.

Every read is scoped to one cluster, namespace and Service name, so a version id of another namespace or cluster
is simply not found: the pages answer 404 and learn nothing about it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.access import Access
from clusters.models import AuditEntry
from services import manifest as m
from services.models import ServiceVersion

PAGE_SIZE = 50
DELETED_PAGE_SIZE = 50
# The largest id a database stores (a signed 64-bit integer): a larger number in a URL is no version, not an error.
MAX_ID = 2**63 - 1


def version_id(text: object) -> int | None:
    """A version id from a URL or a form (plain ASCII digits in the database's range), else None."""
    number = m.parse_number(text, max_digits=19)
    return number if number is not None and 0 < number <= MAX_ID else None


@dataclass(frozen=True)
class Maker:
    """Who made one change: the console user (with the request's id and its audit entry) for the console's own
    writes; otherwise the field managers and their operations the API server recorded ("kubectl-edit (Update)")."""

    username: str = ""
    request_id: str = ""
    audit_id: int | None = None
    managers: tuple[str, ...] = ()
    manager_names: tuple[str, ...] = ()

    @property
    def console(self) -> bool:
        return self.audit_id is not None


def _managers(version: ServiceVersion) -> tuple[tuple[str, ...], tuple[str, ...]]:
    shown, names = [], []
    for maker in version.managers or []:
        if not isinstance(maker, dict) or not maker.get("manager"):
            continue
        manager, operation = str(maker["manager"]), str(maker.get("operation") or "")
        shown.append(f"{manager} ({operation})" if operation else manager)
        if manager not in names:
            names.append(manager)
    return tuple(shown), tuple(names)


def maker_of(version: ServiceVersion, entry: AuditEntry | None) -> Maker:
    shown, names = _managers(version)
    if entry is None:
        return Maker(managers=shown, manager_names=names)
    return Maker(entry.username, entry.request_id, entry.pk, shown, names)


def of_service(access: Access, namespace: str, name: str) -> QuerySet[ServiceVersion]:
    """Every version of the Service ``name`` (all its objects: one deleted and made again has both), newest first."""
    return ServiceVersion.objects.filter(cluster=access.cluster, namespace=namespace, name=name).order_by("-id")


def with_makers(access: Access, namespace: str, versions: list[ServiceVersion]) -> list[ServiceVersion]:
    """The versions, each with ``maker`` set: one query for the audit entries of the console's writes among them
    (a write by its resourceVersion, a deletion by the object's uid)."""
    written = {v.resource_version for v in versions if v.change != ServiceVersion.Change.DELETED} - {""}
    deleted = {v.uid for v in versions if v.change == ServiceVersion.Change.DELETED}
    by_version: dict[str, AuditEntry] = {}
    by_deletion: dict[str, AuditEntry] = {}
    if versions:
        names = {v.name for v in versions}
        entries = AuditEntry.objects.filter(
            cluster=access.cluster.name, namespace=namespace, object_name__in=names, result=AuditEntry.Result.SUCCESS
        ).filter(Q(resource_version__in=written) | Q(action="delete", uid__in=deleted))
        # Oldest first: should two entries name one version, the first written is the write that made it.
        for entry in entries.order_by("id"):
            if entry.action == "delete" and entry.uid in deleted:
                by_deletion.setdefault(entry.uid, entry)
            elif entry.resource_version in written:
                by_version.setdefault((entry.uid, entry.resource_version), entry)
    for version in versions:
        if version.change == ServiceVersion.Change.DELETED:
            entry = by_deletion.get(version.uid)
        else:
            # The object's uid too: a cluster registered again under the same name counts resourceVersions anew.
            entry = by_version.get((version.uid, version.resource_version))
        version.maker = maker_of(version, entry)
    return versions


def history_page(
    access: Access, namespace: str, name: str, before: int | None = None
) -> tuple[list[ServiceVersion], int | None]:
    """Up to PAGE_SIZE versions, newest first (older than version ``before`` when given), with their makers; and
    the id to continue from when older ones exist."""
    found = of_service(access, namespace, name)
    if before is not None:
        found = found.filter(id__lt=before)
    page = list(found[: PAGE_SIZE + 1])
    older = page[PAGE_SIZE - 1].pk if len(page) > PAGE_SIZE else None
    return with_makers(access, namespace, page[:PAGE_SIZE]), older


def get_version(access: Access, namespace: str, name: str, version: object) -> ServiceVersion:
    """The version with id ``version`` of this Service, with its maker; 404 for any other id (another Service's,
    another namespace's or cluster's, or no number at all)."""
    wanted = version_id(version)
    found = of_service(access, namespace, name).filter(pk=wanted).first() if wanted else None
    if found is None:
        raise Http404(_("This version is not in the history of this Service."))
    return with_makers(access, namespace, [found])[0]


def previous(version: ServiceVersion) -> ServiceVersion | None:
    """The version of the same object just before ``version`` (None for its first: its creation, or the first
    the recorder found)."""
    return (
        ServiceVersion.objects.filter(cluster_id=version.cluster_id, uid=version.uid, id__lt=version.pk)
        .order_by("-id")
        .first()
    )


def deletion_to_undo(access: Access, namespace: str, name: str) -> tuple[ServiceVersion, ServiceVersion] | None:
    """When the newest version of the Service is its deletion: that deletion (with its maker) and the version to
    make it again from, the last one before it (the deletion itself when the recorder saw nothing before)."""
    newest = of_service(access, namespace, name).first()
    if newest is None or newest.change != ServiceVersion.Change.DELETED:
        return None
    before = previous(newest)
    source = before if before is not None and before.change != ServiceVersion.Change.DELETED else newest
    return with_makers(access, namespace, [newest])[0], source


def deleted_services(access: Access, namespace: str) -> list[ServiceVersion]:
    """The namespace's Services whose newest version is their deletion, the latest deleted first, with makers."""
    newest = (
        ServiceVersion.objects.filter(cluster=access.cluster, namespace=namespace)
        .values("name")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    found = ServiceVersion.objects.filter(id__in=Subquery(newest), change=ServiceVersion.Change.DELETED)
    return with_makers(access, namespace, list(found.order_by("-id")[:DELETED_PAGE_SIZE]))


@dataclass(frozen=True)
class LastChange:
    """The newest version of a listed Service: when it changed and who changed it (a console user's name, else
    the field managers' names, else nobody known)."""

    when: datetime
    who: str


# Last changes of pages already drawn, by their rows' (uid, resourceVersion): a version row never changes once
# stored, so an answer in which every row's newest version is the row's own resourceVersion stays true until one of
# them changes, and then the key is another. Answers not caught up with the rows (the recorder has not stored the
# newest change yet, or does not run) are asked again each time, and so are those with a change younger than
# SETTLED: the audit entry that names its console user may still be on its way.
SETTLED = timedelta(seconds=10)
_KEPT_CHANGES = 512
_kept_changes: OrderedDict[tuple, dict[str, LastChange]] = OrderedDict()
_kept_lock = threading.Lock()


def last_changes(access: Access, namespace: str, services: list[dict]) -> dict[str, LastChange]:
    """The last change of each listed Service (by uid): the newest version of each object, with the console user
    whose write made it when there is one. One query, or none when the same rows were drawn before."""
    rows = tuple((s["metadata"].get("uid", ""), s["metadata"].get("resourceVersion", "")) for s in services)
    if not rows:
        return {}
    key = (access.cluster.pk, namespace, rows)
    with _kept_lock:
        kept = _kept_changes.get(key)
    if kept is not None:
        return kept
    changes, newest = _last_changes(access, namespace, [uid for uid, _version in rows])
    settled = timezone.now() - SETTLED
    if all(newest.get(uid) == version for uid, version in rows) and all(
        change.when < settled for change in changes.values()
    ):
        with _kept_lock:
            _kept_changes[key] = changes
            if len(_kept_changes) > _KEPT_CHANGES:
                _kept_changes.popitem(last=False)
    return changes


def _last_changes(access: Access, namespace: str, uids: list[str]) -> tuple[dict[str, LastChange], dict[str, str]]:
    """``last_changes`` asked of the database (one query, with a subquery of the audit log), and the
    resourceVersion of each uid's newest version."""
    newest = (
        ServiceVersion.objects.filter(cluster=access.cluster, uid__in=uids)
        .values("uid")
        .annotate(newest=Max("id"))
        .values("newest")
    )
    console_user = AuditEntry.objects.filter(
        cluster=access.cluster.name,
        namespace=namespace,
        object_name=OuterRef("name"),
        uid=OuterRef("uid"),
        resource_version=OuterRef("resource_version"),
        result=AuditEntry.Result.SUCCESS,
    ).values("username")[:1]
    rows = (
        ServiceVersion.objects.filter(id__in=Subquery(newest))
        .annotate(console_user=Subquery(console_user))
        .values_list("uid", "changed_at", "managers", "console_user", "resource_version")
    )
    changes, newest_versions = {}, {}
    for uid, changed_at, managers, console_user, resource_version in rows:
        names = list(
            dict.fromkeys(str(m["manager"]) for m in managers or [] if isinstance(m, dict) and m.get("manager"))
        )
        changes[uid] = LastChange(changed_at, console_user or ", ".join(names))
        newest_versions[uid] = resource_version
    return changes, newest_versions
