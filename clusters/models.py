from __future__ import annotations

import datetime
import json

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clusters import crypto
from kube import Credentials

dns_label = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    _("Use lowercase letters, digits and '-', starting and ending with a letter or digit."),
)


class Cluster(models.Model):
    class IdentityMode(models.TextChoices):
        IMPERSONATE = "impersonate", _("Acts as each user")
        SHARED = "shared", _("Shared credential")

    class IdentityReason(models.TextChoices):
        SET_UP = "set-up", _("set up for impersonation")
        GIVEN_BY_HAND = "given-by-hand", _("credential given by hand")
        NO_CONSTRAINED_IMPERSONATION = "no-constrained-impersonation", _("no constrained impersonation")

    name = models.CharField(
        _("name"),
        max_length=63,
        unique=True,
        validators=[dns_label],
        help_text=_("Used in URLs, e.g. “prod-1”."),
    )
    display_name = models.CharField(_("display name"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    server = models.CharField(_("API server URL"), max_length=500)
    # Fernet token of the JSON-encoded Credentials; never rendered, listed or logged.
    encrypted_credentials = models.TextField(editable=False)
    # Bumped whenever the credentials change, so pooled clients are rebuilt.
    credentials_version = models.PositiveIntegerField(default=1, editable=False)
    auth_method = models.CharField(_("authentication"), max_length=40, editable=False, blank=True)
    insecure_skip_tls_verify = models.BooleanField(
        _("insecure TLS"),
        default=False,
        help_text=_("The server certificate is not verified."),
    )
    reachable = models.BooleanField(_("reachable"), null=True, editable=False)
    kubernetes_version = models.CharField(_("Kubernetes version"), max_length=64, blank=True, editable=False)
    last_checked = models.DateTimeField(_("last checked"), null=True, editable=False)
    # How calls reach the cluster: as the signed-in user (constrained impersonation, set up by
    # ``register_cluster --setup``), or with the stored credential for everyone; ``identity_reason`` says why.
    identity_mode = models.CharField(
        _("identity"), max_length=12, choices=IdentityMode.choices, default=IdentityMode.SHARED, editable=False
    )
    identity_reason = models.CharField(
        _("why this identity"),
        max_length=40,
        choices=IdentityReason.choices,
        default=IdentityReason.GIVEN_BY_HAND,
        editable=False,
    )

    # How the console names a person to this cluster: ``<prefix>:<username>``, or as the cluster's own OIDC
    # authenticator names the same person (a claim of their identity-provider token with a prefix, and their groups
    # with a prefix), so that a binding made for kubectl users and one made by the console name the same subject.
    class Naming(models.TextChoices):
        CONSOLE = "console", _("Console names (console:<username>)")
        OIDC = "oidc", _("The cluster's OIDC names (prefix + claim)")

    naming = models.CharField(_("how people are named"), max_length=10, choices=Naming.choices, default=Naming.CONSOLE)
    oidc_username_claim = models.CharField(
        _("OIDC username claim"),
        max_length=100,
        default="email",
        help_text=_("The claim the cluster's --oidc-username-claim (or JWT authenticator) reads, e.g. email."),
    )
    oidc_username_prefix = models.CharField(
        _("OIDC username prefix"), max_length=100, blank=True, default="oidc:", help_text=_("e.g. oidc:")
    )
    oidc_groups_prefix = models.CharField(
        _("OIDC groups prefix"), max_length=100, blank=True, default="oidc:", help_text=_("e.g. oidc:")
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("cluster")
        verbose_name_plural = _("clusters")

    def __str__(self) -> str:
        return self.display_name or self.name

    @property
    def label(self) -> str:
        return str(self)

    @property
    def checked_just_now(self) -> bool:
        """Checked less than a minute ago ("checked 0 minutes ago" says nothing)."""
        return self.last_checked is not None and timezone.now() - self.last_checked < datetime.timedelta(minutes=1)

    def set_credentials(self, credentials: Credentials) -> None:
        self.encrypted_credentials = crypto.encrypt(json.dumps(credentials.to_dict()).encode())
        self.server = credentials.server
        self.insecure_skip_tls_verify = credentials.insecure_skip_tls_verify
        self.auth_method = "token" if credentials.token else "client-certificate"
        self.credentials_version = (self.credentials_version or 0) + 1

    def credentials(self) -> Credentials:
        return Credentials.from_dict(json.loads(crypto.decrypt(self.encrypted_credentials)))

    @property
    def impersonates(self) -> bool:
        return self.identity_mode == self.IdentityMode.IMPERSONATE

    @property
    def identity_explanation(self) -> str:
        """One sentence for the cluster page: who the cluster sees when someone acts through the console."""
        if self.impersonates:
            return _(
                "Every call is made as the signed-in user (constrained impersonation): the cluster's RBAC decides, "
                "and its audit log names the person."
            )
        if self.identity_reason == self.IdentityReason.NO_CONSTRAINED_IMPERSONATION:
            return _(
                "This cluster (Kubernetes %(version)s) cannot let the console act as each user: constrained "
                "impersonation needs Kubernetes 1.35 or later with the ConstrainedImpersonation feature on. The "
                "console acts for everyone with its own ServiceAccount, limited to the console's roles; the console's "
                "roles decide who may do what, and the cluster's audit log shows the console, not the person."
            ) % {"version": self.kubernetes_version or "?"}
        return _(
            "Registered with a credential given by hand: the console acts with it for everyone, and the cluster's "
            "audit log shows the console, not the person. An administrator can run “manage.py register_cluster "
            "--setup” to act as each user."
        )


class Role(models.TextChoices):
    CLUSTER_ADMIN = "cluster-admin", _("Cluster Admin")
    CLUSTER_EDIT = "cluster-edit", _("Cluster Edit")
    CLUSTER_VIEW = "cluster-view", _("Cluster View")
    NS_ADMIN = "ns-admin", _("NS Admin")
    NS_EDIT = "ns-edit", _("NS Edit")
    NS_VIEW = "ns-view", _("NS View")

    @property
    def is_cluster_wide(self) -> bool:
        return self.value.startswith("cluster-")

    @property
    def can_edit(self) -> bool:
        return not self.value.endswith("-view")


class Grant(models.Model):
    """A role on a cluster (cluster roles) or on one namespace of it (NS roles), for a user or a group."""

    cluster = models.ForeignKey(
        Cluster,
        on_delete=models.CASCADE,
        related_name="grants",
        verbose_name=_("cluster"),
    )
    namespace = models.CharField(
        _("namespace"),
        max_length=63,
        blank=True,
        validators=[dns_label],
        help_text=_("Required for NS roles; leave empty for cluster roles."),
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="cluster_grants",
        verbose_name=_("user"),
    )
    group = models.ForeignKey(
        Group,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="cluster_grants",
        verbose_name=_("group"),
    )
    created = models.DateTimeField(_("created"), auto_now_add=True)
    # The grant's namespace did not exist when its RoleBinding was to be made: made when it does
    # (``rbac.bind_waiting``), and said to the admin and to the person meanwhile.
    waiting_for_namespace = models.BooleanField(_("namespace not created yet"), default=False, editable=False)

    class Meta:
        verbose_name = _("role grant")
        verbose_name_plural = _("role grants")
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="grant_user_xor_group",
            ),
            models.CheckConstraint(
                condition=Q(role__startswith="cluster-", namespace="") | (Q(role__startswith="ns-") & ~Q(namespace="")),
                name="grant_namespace_matches_role",
            ),
        ]

    def __str__(self) -> str:
        who = self.user or self.group
        where = f"{self.cluster.name}/{self.namespace}" if self.namespace else self.cluster.name
        return f"{who}: {self.get_role_display()} @ {where}"

    @property
    def role_enum(self) -> Role:
        return Role(self.role)


class AuditEntry(models.Model):
    class Result(models.TextChoices):
        SUCCESS = "success", _("success")
        DENIED = "denied", _("denied")
        FAILED = "failed", _("failed")

    when = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("user"),
    )
    username = models.CharField(_("username"), max_length=150, blank=True)
    cluster = models.CharField(_("cluster"), max_length=63, blank=True, db_index=True)
    namespace = models.CharField(_("namespace"), max_length=63, blank=True, db_index=True)
    kind = models.CharField(_("kind"), max_length=63, blank=True)
    object_name = models.CharField(_("object"), max_length=253, blank=True)
    action = models.CharField(_("action"), max_length=40, db_index=True)
    result = models.CharField(_("result"), max_length=10, choices=Result.choices)
    detail = models.TextField(_("detail"), blank=True)
    # Sent to the cluster with every call of the request (an impersonated extra), so this entry and the API
    # server's audit events of the same action can be joined.
    request_id = models.CharField(_("request id"), max_length=32, blank=True, db_index=True)
    # The object a successful write made or deleted: its uid, and the resourceVersion the API server gave the
    # written object (the version the history recorder stores for it).
    uid = models.CharField(_("uid"), max_length=64, blank=True)
    resource_version = models.CharField(_("resource version"), max_length=64, blank=True)

    class Meta:
        ordering = ["-when", "-id"]
        # The history's "who": a version's audit entry by the resourceVersion its write returned.
        indexes = [models.Index(fields=["cluster", "resource_version"], name="audit_by_written_version")]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")

    def __str__(self) -> str:
        return f"{self.when:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.object_name} {self.result}"


class PersonAtProvider(models.Model):
    """A console user who signs in with the organisation's identity provider: who they are there (issuer and
    subject) and the claims of their last token (name, e-mail, groups), from which the cluster may name them."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="person_at_provider", verbose_name=_("user")
    )
    issuer = models.CharField(_("issuer"), max_length=500)
    subject = models.CharField(_("subject"), max_length=255)
    claims = models.JSONField(_("claims"), default=dict)
    updated = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("person at the identity provider")
        verbose_name_plural = _("people at the identity provider")
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="person_at_provider_unique")]

    def __str__(self) -> str:
        return f"{self.user} ({self.subject})"


class ProviderSession(models.Model):
    """A console session opened through the identity provider: its tokens (encrypted, never shown), the
    provider's session id (``sid``, which back-channel logout names) and when the provider was last asked."""

    session_key = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_sessions")
    sid = models.CharField(max_length=255, blank=True, db_index=True)
    encrypted_tokens = models.TextField()
    checked = models.DateTimeField()

    def tokens(self) -> dict:
        return json.loads(crypto.decrypt(self.encrypted_tokens))

    def set_tokens(self, tokens: dict) -> None:
        self.encrypted_tokens = crypto.encrypt(json.dumps(tokens).encode())


class AccessEpoch(models.Model):
    """One value that changes whenever anybody's access may have changed: a grant, a user, a group or a membership,
    a cluster, a sign-out (``clusters.epoch``). What the console hands out to vouch for a user's access without
    asking the database again (a live page's poll token) carries the value it was made under, and is worth nothing
    once the value has changed."""

    value = models.BigIntegerField(default=0)

    class Meta:
        default_permissions = ()
