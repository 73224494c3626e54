from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

import kube
from clusters import audit, rbac
from clusters.models import Cluster


class LoginForm(AuthenticationForm):
    """Django's login form; every failure is also written to the audit log. Throttling is django-axes' (see the
    AXES_* settings): it counts failures per username and client address in the database, for every worker."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": _("Too many failed log-ins. Wait %(minutes)d minutes and try again."),
        "local_off": _("Passwords are not used here: sign in with your organisation's account."),
    }

    def clean(self) -> dict:
        if settings.LOCAL_LOGIN == "off":
            raise forms.ValidationError(self.error_messages["local_off"], code="local_off")
        try:
            return super().clean()
        except forms.ValidationError:
            if self.request is not None:
                username = (self.cleaned_data.get("username") or "")[:150]
                audit.record(self.request, action="login", result="failed", username=username)
            raise


USE_CHOICES = [
    (
        rbac.SET_UP,
        _(
            "Set the cluster up with this credential (recommended): it is used once to create the console's roles "
            "and its own limited ServiceAccount, and is not stored; the console then acts as each user."
        ),
    ),
    (
        rbac.OWN_TOKEN,
        _(
            "Store this credential as the console's own token (a renewed token of the console's ServiceAccount): it "
            "must be able to act as users and do nothing more."
        ),
    ),
    (
        rbac.SHARED,
        _(
            "Store this credential and act with it for everyone (shared mode): the cluster's RBAC and audit log "
            "then see the console, not the person. Only for a cluster that cannot act as each user."
        ),
    ),
]


class ClusterForm(forms.ModelForm):
    """Register or update a cluster. Credentials are write-only: the fields are never filled from the database,
    and leaving them all empty on an existing cluster keeps what is stored.

    A credential given is judged by what it may do before anything is stored (``rbac.rights_of``), for the use
    chosen: the set-up (an administrator's, used once and never stored: only the console's limited token is),
    the console's own token of a cluster that acts as each user, or a shared credential."""

    error_messages = {
        "no_credentials": _("Give a kubeconfig, or an API server URL with a token or a client certificate and key."),
        "both": _("Give either a kubeconfig or separate credentials, not both."),
        "unreachable": _("The cluster could not be reached with these credentials: %(reason)s"),
        "set_up_refused": _("The cluster refused the set-up: %(reason)s"),
    }

    # Not posted (a script's form): the set-up, which stores the least.
    use = forms.ChoiceField(
        label=_("How to use the credential"),
        choices=USE_CHOICES,
        initial=rbac.SET_UP,
        required=False,
        widget=forms.RadioSelect,
    )

    kubeconfig = forms.FileField(
        label=_("kubeconfig file"),
        required=False,
        help_text=_("Only inline data is accepted: no exec, auth-provider, token files or certificate paths."),
    )
    context = forms.CharField(
        label=_("context"), required=False, help_text=_("The kubeconfig context to use; empty for its current one.")
    )
    server_url = forms.CharField(
        label=_("API server URL"), required=False, help_text=_("For separate credentials, e.g. https://10.0.0.1:6443")
    )
    token = forms.CharField(
        label=_("bearer token"), required=False, strip=True, widget=forms.PasswordInput(render_value=False)
    )
    client_certificate = forms.CharField(
        label=_("client certificate (PEM)"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    client_key = forms.CharField(
        label=_("client key (PEM)"),
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Paste the PEM text; it is never shown again."),
    )
    certificate_authority = forms.CharField(
        label=_("certificate authority (PEM)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Empty to trust the system's certificate authorities."),
    )

    class Meta:
        model = Cluster
        fields = [
            "name",
            "display_name",
            "description",
            "insecure_skip_tls_verify",
            "naming",
            "oidc_username_claim",
            "oidc_username_prefix",
            "oidc_groups_prefix",
        ]
        help_texts = {
            "insecure_skip_tls_verify": _(
                "Accept a cluster whose certificate is not verified, or a plain http:// URL. Anyone on the network "
                "path can then read and change its traffic."
            )
        }

    secret_fields = ("kubeconfig", "token", "client_certificate", "client_key", "certificate_authority")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.new_credentials: kube.Credentials | None = None
        self.checked_version = ""
        self.set_up_done: rbac.SetUp | None = None
        self.rights: rbac.Rights | None = None
        if self.instance.pk is not None:
            self.fields["use"].help_text = _("Only when you give new credentials.")
        for name in self.NAMING:
            # Not posted (``register_cluster``, a script): the cluster's own, or the default.
            self.fields[name].required = False

    NAMING = ("naming", "oidc_username_claim", "oidc_username_prefix", "oidc_groups_prefix")

    def _posted_or_kept(self, name: str) -> str:
        if name in self.data:
            return self.cleaned_data.get(name) or ""
        return getattr(self.instance, name)

    def clean_naming(self) -> str:
        return self._posted_or_kept("naming") or Cluster.Naming.CONSOLE

    def clean_oidc_username_claim(self) -> str:
        return self._posted_or_kept("oidc_username_claim") or "email"

    def clean_oidc_username_prefix(self) -> str:
        return self._posted_or_kept("oidc_username_prefix")

    def clean_oidc_groups_prefix(self) -> str:
        return self._posted_or_kept("oidc_groups_prefix")

    def _credentials(self) -> kube.Credentials | None:
        data = self.cleaned_data
        insecure = bool(data.get("insecure_skip_tls_verify"))
        upload = data.get("kubeconfig")
        separate = any(data.get(name) for name in ("server_url", "token", "client_certificate", "client_key"))
        if upload and separate:
            raise forms.ValidationError(self.error_messages["both"], code="both")
        if upload:
            limit = settings.KUBECONFIG_MAX_BYTES
            text = upload.read(limit + 1)
            return kube.parse_kubeconfig(text, data.get("context") or None, max_bytes=limit, allow_insecure=insecure)
        if separate:
            server = data.get("server_url", "")
            kube.validate_server_url(server, allow_http=insecure)
            credentials = kube.Credentials(
                server=server,
                ca_data=data.get("certificate_authority", "").encode(),
                token=data.get("token", ""),
                client_cert=data.get("client_certificate", "").encode(),
                client_key=data.get("client_key", "").encode(),
                insecure_skip_tls_verify=insecure,
            )
            if not credentials.token and not credentials.client_cert:
                raise forms.ValidationError(self.error_messages["no_credentials"], code="no_credentials")
            if bool(credentials.client_cert) != bool(credentials.client_key):
                raise kube.KubeconfigError(_("A client certificate needs its key, and a key its certificate."))
            return credentials
        if self.instance.pk is None:
            raise forms.ValidationError(self.error_messages["no_credentials"], code="no_credentials")
        return None

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            self.new_credentials = self._credentials()
        except kube.KubeconfigError as error:
            field = "kubeconfig" if cleaned.get("kubeconfig") else None
            self.add_error(field, str(error))
            return cleaned
        if self.new_credentials is not None:
            try:
                self.checked_version = kube.check_connection(self.new_credentials)
                self._judge(cleaned.get("use") or rbac.SET_UP)
            except (kube.ClusterUnavailable, kube.KubeconfigError) as error:
                self.add_error(
                    None,
                    forms.ValidationError(
                        self.error_messages["unreachable"], code="unreachable", params={"reason": str(error)}
                    ),
                )
        elif self.instance.pk is not None and "insecure_skip_tls_verify" in self.changed_data:
            # The flag lives inside the stored credentials too; changing it alone means re-entering them.
            self.add_error("insecure_skip_tls_verify", _("Give the credentials again to change this setting."))
        return cleaned

    def _judge(self, use: str) -> None:
        """Ask the cluster what the credential may do, refuse it for ``use`` with the reason, and run the set-up
        with it when that is the use (the set-up's own token is what gets stored)."""
        self.rights = rbac.rights_of(self.new_credentials)
        for problem in rbac.credential_problems(self.rights, use):
            self.add_error("use", problem)
        if self.errors or use != rbac.SET_UP:
            return
        try:
            self.set_up_done = rbac.set_up(self.new_credentials)
        except kube.ApiError as error:
            self.add_error(
                None,
                forms.ValidationError(
                    self.error_messages["set_up_refused"], code="set_up_refused", params={"reason": error.message}
                ),
            )

    @property
    def stores_more_than_needed(self) -> bool:
        """Whether the credential stored can do more than the console needs (a shared one chosen so)."""
        return self.set_up_done is None and self.rights is not None and self.rights.more_than_the_console_needs

    def save(self, commit: bool = True) -> Cluster:
        cluster = super().save(commit=False)
        if self.new_credentials is not None:
            cluster.kubernetes_version = self.checked_version
            cluster.reachable = True
            cluster.last_checked = timezone.now()
            use = self.cleaned_data.get("use") or rbac.SET_UP
            if self.set_up_done is not None:
                # The administrator's credential set the cluster up and is dropped here: only the console's
                # limited token is stored, in the mode the cluster allows.
                cluster.set_credentials(self.set_up_done.credentials)
                cluster.identity_mode, cluster.identity_reason = self.set_up_done.mode, self.set_up_done.reason
            elif use == rbac.OWN_TOKEN:
                # Judged: it acts as users and does nothing more (a renewed token, or deploy/'s ServiceAccount).
                cluster.set_credentials(self.new_credentials)
                cluster.identity_mode = Cluster.IdentityMode.IMPERSONATE
                cluster.identity_reason = Cluster.IdentityReason.SET_UP
            else:
                cluster.set_credentials(self.new_credentials)
                cluster.identity_mode = Cluster.IdentityMode.SHARED
                cluster.identity_reason = Cluster.IdentityReason.GIVEN_BY_HAND
        if commit:
            cluster.save()
        return cluster
