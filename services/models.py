"""The history of Services: every version the recorder (``services.recorder``) saw, in every registered cluster."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from clusters.models import Cluster


class ServiceVersion(models.Model):
    """One version of one Service, stored once: (cluster, uid, resourceVersion) is unique, so a recorder that sees
    an event twice (a resumed watch, a second replica) stores it once.

    ``manifest`` is the object as the API server returned it without what changes with no one changing the Service:
    ``status``, ``metadata.managedFields`` and ``metadata.resourceVersion`` (kept in its own column). Who changed it
    is read from ``managedFields`` before they are dropped (``managers``); a change made through the console is
    also tied to its audit entry by the resourceVersion its write returned (``AuditEntry.resource_version``)."""

    class Change(models.TextChoices):
        CREATED = "created", pgettext_lazy("version", "created")
        CHANGED = "changed", pgettext_lazy("version", "changed")
        DELETED = "deleted", pgettext_lazy("version", "deleted")
        # Found by a relist: its earlier history is unknown (recording began, or the recorder was away longer
        # than the API server keeps events, and what happened in between is lost).
        FOUND = "found", pgettext_lazy("version", "found")

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="service_versions")
    namespace = models.CharField(_("namespace"), max_length=63)
    name = models.CharField(_("name"), max_length=63)
    uid = models.CharField(max_length=64)
    resource_version = models.CharField(max_length=64)
    change = models.CharField(_("change"), max_length=10, choices=Change.choices)
    # When the change was made: the newest managedFields time of the object (seconds), or, for a deletion and an
    # object without one, when the recorder saw it.
    changed_at = models.DateTimeField(_("changed"))
    recorded_at = models.DateTimeField(_("recorded"), auto_now_add=True)
    # The field managers of the change: [{"manager", "operation", "subresource"?}], from managedFields entries
    # with the newest time; empty when the API server did not say (a deletion, an object without managedFields).
    managers = models.JSONField(default=list)
    # managedFields in short (services.history.managed_signature): which entries the next change touched.
    managed = models.JSONField(default=list)
    # The field paths that differ from the previous version of the same Service ("spec.ports[http].port").
    fields = models.JSONField(default=list)
    manifest = models.JSONField()
    # Between the previous stored version and this one, versions may have been missed (see FOUND).
    after_gap = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "uid", "resource_version"], name="one_version_per_write")
        ]
        indexes = [
            models.Index(fields=["cluster", "namespace", "name", "-id"], name="history_of_a_service"),
            models.Index(fields=["cluster", "uid", "-id"], name="history_of_an_object"),
            models.Index(fields=["recorded_at"], name="history_by_age"),
        ]
        ordering = ["-id"]
        verbose_name = _("Service version")
        verbose_name_plural = _("Service versions")

    def __str__(self) -> str:
        return f"{self.cluster_id}/{self.namespace}/{self.name}@{self.resource_version} ({self.change})"


class RecorderCheckpoint(models.Model):
    """Where the recorder of a cluster stopped: the resourceVersion of the last event (or bookmark) it stored,
    written in the same transaction as the versions up to it, so a restarted recorder resumes its watch there."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="recorder_checkpoint")
    resource_version = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.cluster_id}@{self.resource_version}"
