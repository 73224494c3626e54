"""The Service form: section forms (basics, traffic and load balancer, session affinity, advanced) whose field
names are ServiceSpec's, and formsets for ports, selector and annotations, held together by ServiceFormBundle.

The rules here mirror the API server's validation (k8s pkg/apis/core/validation) so most mistakes are caught with
a clear message before a request is made; the API server stays the judge, and its 422 causes are put on the
matching fields by ``apply_api_errors``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Any

from django import forms
from django.core import signing
from django.core.exceptions import ValidationError
from django.forms.renderers import DjangoTemplates
from django.template import loader
from django.utils.translation import gettext_lazy as _

import kube
from kube import load_yaml_document
from services import manifest as m
from services.api import explained

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?\Z")
ANNOTATIONS_MAX_BYTES = 256 * 1024


def validate_qualified_name(value: str) -> None:
    """A label or annotation key: an optional DNS subdomain prefix and '/', then a name of up to 63 characters."""
    prefix, _slash, name = value.rpartition("/")
    if _slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        raise ValidationError(
            _("The prefix before '/' must be a DNS subdomain such as example.com."), code="invalid_key_prefix"
        )
    if not name or len(name) > 63 or not QUALIFIED_NAME_PART.match(name):
        raise ValidationError(
            _(
                "Use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit "
                "(optionally prefixed by a DNS subdomain and '/')."
            ),
            code="invalid_key",
        )


def validate_label_value(value: str) -> None:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        raise ValidationError(
            _("Use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit."),
            code="invalid_label_value",
        )


MAX_ROWS = 100  # per list (ports, selector, annotations): the formsets' one cap, enforced with a message


def parse_target_port(value: str) -> int | str | None:
    """A number 1–65535 (sent as an int) or an IANA service name (sent as a string); empty means 'same as port'."""
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"[0-9]+", value):
        number = m.parse_number(value, max_digits=5)
        if number is None or not 1 <= number <= 65535:
            raise ValidationError(_("A port number must be between 1 and 65535."), code="port_range")
        return number
    if not IANA_SVC_NAME.match(value) or "--" in value or not re.search(r"[a-z]", value):
        raise ValidationError(
            _(
                "Give a port number or a named container port: at most 15 lowercase letters, digits and '-', "
                "with at least one letter."
            ),
            code="invalid_port_name",
        )
    return value


# --- fields ---------------------------------------------------------------------------------------------------


class NumberField(forms.IntegerField):
    """An IntegerField that takes ASCII digits only (``manifest.parse_number``): "²" or "٣" is not a number here."""

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        number = m.parse_number(value)
        if number is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return number


class ListField(forms.CharField):
    """Items separated by commas, spaces or new lines: a list in ``cleaned_data`` and in ``initial``, as in the
    ServiceSpec, so neither side needs converting."""

    def __init__(self, *, separator: str = ", ", **kwargs: Any) -> None:
        self.separator = separator
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return self.separator.join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list | tuple):
            return [str(item) for item in value]
        return str(value or "").replace(",", " ").split()


# --- rendering ------------------------------------------------------------------------------------------------


class FieldGroupRenderer(DjangoTemplates):
    """Django's form renderer, with the console's field group template (``services/_field.html``), which lives with
    the project's templates rather than the form renderer's own."""

    field_template_name = "services/_field.html"

    def get_template(self, template_name: str) -> Any:
        if template_name.startswith("services/"):
            return loader.get_template(template_name)
        return super().get_template(template_name)


# One renderer for every form: each renderer builds (and caches) its own template engine.
FIELD_GROUPS = FieldGroupRenderer()


class Section(forms.Form):
    """One part of the Service form. Its field names are ServiceSpec's, so its ``cleaned_data`` is a piece of the
    spec. ``shown_for`` names the fields that only mean something for some types: the others are rendered hidden
    (what was typed survives a type switch), neither judged nor written."""

    default_renderer = FIELD_GROUPS
    layout = "field"  # or "cell": a table cell of a row
    shown_for: dict[str, tuple[str, ...]] = {}
    cards: tuple[str, ...] = ()  # radio fields drawn as cards
    refreshes: tuple[str, ...] = ()  # fields whose change re-renders the form
    warned: tuple[str, ...] = ()  # fields whose help text warns about the value they hold

    def __init__(
        self,
        *args: Any,
        service_type: str = m.CLUSTER_IP,
        urls: dict | None = None,
        index: int = 0,
        held: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.service_type = service_type
        self.urls = urls or {}
        self.index = index
        # The values of the Service being edited: a value the cluster holds stays acceptable, offered even where
        # the form's own choices lack it (a pool MetalLB no longer lists, a newer API value).
        self.held = held or {}
        for name, value in self.held.items():
            field = self.fields.get(name)
            if isinstance(field, forms.ChoiceField) and value and value not in dict(field.choices):
                field.choices = [*field.choices, (value, value)]

    @property
    def kept_hidden(self) -> set[str]:
        return {
            name for name, types in self.shown_for.items() if name in self.fields and self.service_type not in types
        }

    @property
    def shown(self) -> bool:
        return any(name not in self.kept_hidden for name in self.fields)

    def full_clean(self) -> None:
        super().full_clean()
        if not self.is_bound:
            return
        for name in self.kept_hidden:
            self._errors.pop(name, None)
            self.cleaned_data.pop(name, None)


# --- the sections ---------------------------------------------------------------------------------------------


SERVICE_TYPE_CHOICES = [
    (m.CLUSTER_IP, _("Cluster access (ClusterIP)")),
    (m.NODE_PORT, _("Node access (NodePort)")),
    (m.LOAD_BALANCER, _("Load balancer (LoadBalancer)")),
]
ROUTED = (m.CLUSTER_IP, m.NODE_PORT, m.LOAD_BALANCER)  # every type but ExternalName, a DNS alias
TRAFFIC_DISTRIBUTION_CHOICES = [
    ("", _("Not set (no preference)")),
    (m.PREFER_SAME_ZONE, m.PREFER_SAME_ZONE),
    (m.PREFER_SAME_NODE, m.PREFER_SAME_NODE),
]


NEW_NAME_MESSAGES = {
    "name_length": _(
        "A new Service's name must be 4 to 63 characters long: the console's naming rule, so that names stay "
        "readable in lists and DNS. Services made elsewhere with shorter names can still be edited."
    ),
    "name_format": _(
        "Use lowercase letters, digits and '-', starting with a lowercase letter and ending with a letter or digit."
    ),
}


def validate_new_name(name: str) -> None:
    """The one naming rule for a Service the console creates, from the form or from YAML (the seed's 4–63
    characters, a DNS-1035 label). An existing Service keeps whatever name the cluster accepted."""
    if not 4 <= len(name) <= 63:
        raise ValidationError(NEW_NAME_MESSAGES["name_length"], code="name_length")
    if not DNS1035_LABEL.match(name):
        raise ValidationError(NEW_NAME_MESSAGES["name_format"], code="name_format")


class BasicsForm(Section):
    type = forms.ChoiceField(
        label=_("Access type"), choices=SERVICE_TYPE_CHOICES, initial=m.CLUSTER_IP, widget=forms.RadioSelect
    )
    # No max_length: the browser would cut a longer name at it silently; clean_name refuses it with a message.
    name = forms.CharField(label=_("Service name"))
    # Cluster Admin only (an ExternalName Service can take other tenants' traffic).
    external_name = forms.CharField(
        label=_("External name"), required=False, max_length=253, help_text=_("A DNS name, e.g. db.example.com.")
    )
    shown_for = {"external_name": (m.EXTERNAL_NAME,)}
    cards = refreshes = ("type",)

    def __init__(self, *args: Any, editing: bool = False, admin_features: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            self.fields["name"].disabled = True
        else:
            self.fields["name"].help_text = _(
                "4 to 63 characters: lowercase letters, digits and '-', starting with a letter and ending with a "
                "letter or digit."
            )
        if admin_features or self.held.get("type") == m.EXTERNAL_NAME:
            # Others may edit an ExternalName Service they can see (its labels, say) but not make one.
            self.fields["type"].choices = [*SERVICE_TYPE_CHOICES, (m.EXTERNAL_NAME, _("External name (ExternalName)"))]
        if not admin_features:
            # Not offered, so not accepted either: a posted value is ignored, and an edit keeps the Service's own.
            del self.fields["external_name"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if self.editing:
            return name  # an existing name is whatever the cluster accepted; it cannot change
        validate_new_name(name)
        return name

    def clean_external_name(self) -> str:
        value = self.cleaned_data["external_name"].strip().rstrip(".")
        if value and (len(value) > 253 or not DNS1123_SUBDOMAIN.match(value)):
            raise ValidationError(_("Give a DNS name such as db.example.com (lowercase)."), code="dns_name")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        external = "external_name" in self.fields and cleaned.get("type") == m.EXTERNAL_NAME
        if external and not cleaned.get("external_name"):
            self.add_error("external_name", _("An ExternalName Service needs the DNS name it points to."))
        return cleaned


class TrafficForm(Section):
    external_traffic_policy = forms.ChoiceField(
        label=_("External traffic policy"),
        choices=[("Cluster", _("Cluster")), ("Local", _("Local"))],
        initial="Cluster",
        required=False,
        widget=forms.RadioSelect,
        help_text=_(
            "Cluster: traffic may go to Pods on any node. Local: only to Pods on the node that received it, keeping "
            "the client's source address."
        ),
    )
    lb_type = forms.ChoiceField(
        label=_("Load balancer type"),
        choices=[(m.METALLB, "MetalLB"), (m.OTHER_LB, _("Other"))],
        initial=m.METALLB,
        required=False,
        widget=forms.RadioSelect,
    )
    metallb_pool = forms.CharField(label=_("MetalLB IP pool"), required=False)
    lb_address = forms.CharField(label=_("Load balancer address"), required=False, max_length=255)
    shown_for = {
        "external_traffic_policy": (m.NODE_PORT, m.LOAD_BALANCER),
        "lb_type": (m.LOAD_BALANCER,),
        "metallb_pool": (m.LOAD_BALANCER,),
        "lb_address": (m.LOAD_BALANCER,),
    }
    refreshes = ("lb_type",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ip_pools: list[str] | None = None
        self.fields["lb_address"].help_text = (
            _("Optional: an address from the pool; empty to let MetalLB choose.")
            if self.chosen_lb_type == m.METALLB
            else _("The address your cloud provider's load balancer should use, if it supports choosing one.")
        )
        self.offer_ip_pools(None)

    @property
    def chosen_lb_type(self) -> str:
        return m.OTHER_LB if self["lb_type"].value() == m.OTHER_LB else m.METALLB

    @property
    def kept_hidden(self) -> set[str]:
        hidden = super().kept_hidden
        return hidden | {"metallb_pool"} if self.chosen_lb_type != m.METALLB else hidden

    def offer_ip_pools(self, pools: list[str] | None) -> None:
        """The cluster's MetalLB pools to choose from; None when it has no MetalLB."""
        self.ip_pools = pools
        label = self.fields["metallb_pool"].label
        held = self.held.get("metallb_pool") or ""
        if pools:
            choices = [("", "—")] + [(pool, pool) for pool in pools]
            if held and held not in pools:
                choices.append((held, _("%(pool)s (not a pool of this cluster)") % {"pool": held}))
            help_text = _("The Service gets its address from this pool, announced by MetalLB (ARP or BGP).")
            self.fields["metallb_pool"] = forms.ChoiceField(
                label=label, choices=choices, required=False, help_text=help_text
            )
            return
        # Nothing to choose: the field is kept (hidden) and its help says why.
        help_text = (
            _("MetalLB is installed but has no IP address pool yet.")
            if pools is not None
            else _(
                "MetalLB is not installed on this cluster (it has no IPAddressPool type). Choose “Other” or install "
                "MetalLB."
            )
        )
        self.fields["metallb_pool"] = forms.CharField(
            label=label, required=False, widget=forms.HiddenInput, help_text=help_text
        )

    def clean_external_traffic_policy(self) -> str:
        return self.cleaned_data["external_traffic_policy"] or "Cluster"

    def clean_lb_type(self) -> str:
        return self.cleaned_data["lb_type"] or m.METALLB

    def clean_lb_address(self) -> str:
        """An IP address (MetalLB also takes an IPv4 and an IPv6 address, comma-separated, for dual stack)."""
        value = self.cleaned_data["lb_address"].strip()
        parts = [part.strip() for part in value.split(",")] if value else []
        try:
            for part in parts:
                ipaddress.ip_address(part)
        except ValueError:
            raise ValidationError(
                _("Give an IP address such as 192.0.2.10 (for MetalLB, two separated by a comma for dual stack)."),
                code="invalid_address",
            ) from None
        if len(parts) > 2:
            raise ValidationError(_("Give at most two addresses."), code="too_many_addresses")
        return ",".join(parts)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        unchanged = self.held and self.held.get("metallb_pool", "") == cleaned.get("metallb_pool", "")
        if self.service_type == m.LOAD_BALANCER and cleaned.get("lb_type") == m.METALLB and not unchanged:
            if self.ip_pools is None and cleaned.get("metallb_pool"):
                self.add_error("metallb_pool", _("This cluster has no MetalLB installed (no IPAddressPool type)."))
            elif self.ip_pools is not None and not cleaned.get("metallb_pool"):
                self.add_error("metallb_pool", _("Choose the MetalLB IP pool."))
        return cleaned


class AffinityForm(Section):
    session_affinity = forms.BooleanField(label=_("Send requests from the same client to the same Pod"), required=False)
    session_timeout = NumberField(
        label=_("Session affinity maximum duration (seconds)"),
        min_value=1,
        max_value=86400,
        initial=m.DEFAULT_SESSION_TIMEOUT,
        required=False,
        help_text=_("Used when session affinity is on: 1 to 86400 seconds, 30 by default."),
    )

    def full_clean(self) -> None:
        super().full_clean()
        if self.is_bound and not self.cleaned_data.get("session_affinity"):
            # With affinity off the duration is not written, so whatever it holds must not block saving.
            self._errors.pop("session_timeout", None)
            self.cleaned_data["session_timeout"] = m.DEFAULT_SESSION_TIMEOUT

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("session_affinity") and "session_timeout" in cleaned and not cleaned["session_timeout"]:
            self.add_error("session_timeout", _("Give a duration between 1 and 86400 seconds."))
        elif "session_timeout" in cleaned:
            cleaned["session_timeout"] = cleaned["session_timeout"] or m.DEFAULT_SESSION_TIMEOUT
        return cleaned


class AdvancedForm(Section):
    internal_traffic_policy = forms.ChoiceField(
        label=_("Internal traffic policy"),
        choices=[("", _("Default (Cluster)")), ("Cluster", "Cluster"), ("Local", "Local")],
        required=False,
        help_text=_("Local: traffic from inside the cluster only goes to Pods on the same node."),
    )
    traffic_distribution = forms.ChoiceField(
        label=_("Traffic distribution"),
        choices=TRAFFIC_DISTRIBUTION_CHOICES,
        required=False,
        help_text=_(
            "Prefer endpoints near the client: PreferSameZone in the client's zone, PreferSameNode on the client's "
            "node; other endpoints are used when none is ready there."
        ),
    )
    ip_family_policy = forms.ChoiceField(
        label=_("IP family policy"),
        choices=[
            ("", _("Default (SingleStack)")),
            ("SingleStack", "SingleStack"),
            ("PreferDualStack", "PreferDualStack"),
            ("RequireDualStack", "RequireDualStack"),
        ],
        required=False,
    )
    load_balancer_class = forms.CharField(
        label=_("Load balancer class"),
        required=False,
        max_length=253,
        help_text=_("Which load balancer implementation handles this Service, e.g. example.com/internal-vip."),
    )
    load_balancer_source_ranges = ListField(
        label=_("Load balancer source ranges"),
        required=False,
        separator="\n",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Client address ranges allowed through the load balancer, one CIDR per line, e.g. 203.0.113.0/24."),
    )
    publish_not_ready_addresses = forms.BooleanField(
        label=_("Publish addresses of Pods that are not ready"),
        required=False,
        help_text=_("DNS and endpoints list the Pods before they pass their readiness checks (peer discovery)."),
    )
    # Cluster Admin only: these can take traffic meant for other Services.
    headless = forms.BooleanField(
        label=_("Headless (no cluster IP)"),
        required=False,
        help_text=_("DNS returns the pods' addresses directly. Only when creating."),
    )
    external_ips = ListField(
        label=_("External IPs"),
        required=False,
        help_text=_("Addresses on the nodes that also accept traffic for this Service, comma-separated."),
    )
    ADMIN_ONLY = ("headless", "external_ips")
    shown_for = {
        "internal_traffic_policy": ROUTED,
        "traffic_distribution": ROUTED,
        "publish_not_ready_addresses": ROUTED,
        "ip_family_policy": ROUTED,
        "load_balancer_class": (m.LOAD_BALANCER,),
        "load_balancer_source_ranges": (m.LOAD_BALANCER,),
        "headless": (m.CLUSTER_IP,),
        "external_ips": ROUTED,
    }

    def __init__(self, *args: Any, editing: bool = False, admin_features: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admin_features = admin_features
        if not admin_features:
            for name in self.ADMIN_ONLY:
                del self.fields[name]
        elif editing:
            self.fields["headless"].disabled = True  # the cluster IP cannot change once set
        field = self.fields["traffic_distribution"]
        # Read without a BoundField, which would keep the help text it saw first.
        held = self.data.get("traffic_distribution") if self.is_bound else self.initial.get("traffic_distribution")
        if held == m.PREFER_CLOSE:
            # Offered only to a form that holds it already (an edit of a Service that has it): kept as it is, and
            # said to be the deprecated name it is. A new choice is among the current names.
            field.choices = [
                *(choice for choice in field.choices if choice[0] != m.PREFER_CLOSE),
                (m.PREFER_CLOSE, _("PreferClose (deprecated name of PreferSameZone)")),
            ]
            field.help_text = _(
                "PreferClose is the deprecated name of PreferSameZone and works the same; choose PreferSameZone to "
                "use the current name."
            )
            self.warned = ("traffic_distribution",)

    @property
    def plain_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in self.ADMIN_ONLY]

    @property
    def admin_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name in self.ADMIN_ONLY]

    @property
    def has_values(self) -> bool:
        """Whether anything is set here, so the collapsed section opens."""
        return any(self[name].value() for name in self.fields if name not in self.kept_hidden)

    def clean_load_balancer_class(self) -> str:
        value = self.cleaned_data["load_balancer_class"].strip()
        if value:
            validate_qualified_name(value)
        return value

    def clean_load_balancer_source_ranges(self) -> list[str]:
        ranges = self.cleaned_data["load_balancer_source_ranges"]
        try:
            for cidr in ranges:
                ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValidationError(_("Give address ranges in CIDR form, such as 203.0.113.0/24."), code="cidr") from None
        return ranges

    def clean_external_ips(self) -> list[str]:
        addresses = self.cleaned_data["external_ips"]
        try:
            for address in addresses:
                ipaddress.ip_address(address)
        except ValueError:
            raise ValidationError(_("Give IP addresses such as 192.0.2.10, separated by commas."), code="ip") from None
        return addresses


class LockForm(forms.Form):
    """The resourceVersion an edit started from: the API server refuses the write (409) if the Service changed
    since, so nobody overwrites a change they never saw. Not part of the spec."""

    resource_version = forms.CharField(required=False, widget=forms.HiddenInput)
    # The Service as the form was filled from it (``opened_token``): after a conflict, what the user changed is
    # told apart from what someone else changed meanwhile.
    opened = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.editing and not cleaned.get("resource_version", "").strip():
            raise ValidationError(
                _(
                    "This form does not say which version of the Service it edits, so saving it could overwrite a "
                    "change made meanwhile. Reload the page and make your changes again."
                ),
                code="no_resource_version",
            )
        return cleaned


# --- rows -----------------------------------------------------------------------------------------------------


class PortForm(Section):
    layout = "cell"
    protocol = forms.ChoiceField(
        label=_("Protocol"), choices=[("TCP", "TCP"), ("UDP", "UDP"), ("SCTP", "SCTP")], initial="TCP"
    )
    name = forms.CharField(label=_("Port name"), required=False, max_length=63)
    # Empty takes the container port when that is a number (the seed: the service port follows the container port).
    port = NumberField(label=_("Service port"), required=False, min_value=1, max_value=65535)
    target_port = forms.CharField(
        label=_("Container port"),
        required=False,
        max_length=15,
        widget=forms.TextInput(attrs={"list": "named-ports", "autocomplete": "off"}),
    )
    node_port = NumberField(label=_("Node port"), required=False, min_value=1, max_value=65535)
    shown_for = {"node_port": (m.NODE_PORT, m.LOAD_BALANCER)}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name and not DNS1123_LABEL.match(name):
            raise ValidationError(
                _("Use lowercase letters, digits and '-', starting and ending with a letter or digit."),
                code="invalid_port_name",
            )
        return name

    def clean_target_port(self) -> int | str | None:
        return parse_target_port(self.cleaned_data["target_port"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and not any(cleaned.get(name) for name in ("name", "port", "target_port", "node_port")):
            return {}  # a row left empty (a Service without ports shows one to fill in) is no port
        if "port" in cleaned and cleaned["port"] is None and "port" not in self.errors:
            if isinstance(cleaned.get("target_port"), int):
                cleaned["port"] = cleaned["target_port"]
            else:
                self.add_error("port", ValidationError(self.fields["port"].error_messages["required"], code="required"))
        return cleaned


class RowFormSet(forms.BaseFormSet):
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_many_forms": _("A list holds at most %(num)d rows; rows beyond that are not kept."),
    }

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "index": index or 0}

    @property
    def dropped_rows(self) -> bool:
        """Whether the POST held more rows than the cap (the formset builds at most MAX_ROWS of them)."""
        return self.is_bound and self.management_form.cleaned_data.get("TOTAL_FORMS", 0) > self.absolute_max


class BasePortFormSet(RowFormSet):
    required = True

    def clean(self) -> None:
        if any(self.errors):
            return
        rows = [form.cleaned_data for form in self.forms if form.cleaned_data]
        if not rows and self.required:
            raise ValidationError(_("Add at least one port."), code="no_ports")
        seen_names: set[str] = set()
        seen_ports: set[tuple[int, str]] = set()
        for form in self.forms:
            data = form.cleaned_data
            if not data:
                continue
            name, key = data["name"], (data["port"], data["protocol"])
            if len(rows) > 1 and not name:
                form.add_error("name", _("With more than one port, every port needs a name."))
            elif name in seen_names:
                form.add_error("name", _("Port names must be unique."))
            seen_names.add(name)
            if key in seen_ports:
                form.add_error("port", _("This port and protocol are already used by another row."))
            seen_ports.add(key)


def _row_formset(form: type[forms.Form], formset: type[forms.BaseFormSet]) -> type[forms.BaseFormSet]:
    return forms.formset_factory(
        form, formset=formset, extra=0, max_num=MAX_ROWS, absolute_max=MAX_ROWS, validate_max=True
    )


PortFormSet = _row_formset(PortForm, BasePortFormSet)


class KeyValueForm(Section):
    layout = "cell"
    key = forms.CharField(label=_("Key"), required=False, max_length=317)
    value = forms.CharField(label=_("Value"), required=False, strip=False)

    def clean_key(self) -> str:
        key = self.cleaned_data["key"].strip()
        if key:
            validate_qualified_name(key)
        return key


class SelectorForm(KeyValueForm):
    def clean_value(self) -> str:
        value = self.cleaned_data["value"].strip()
        validate_label_value(value)
        return value


class LabelForm(SelectorForm):
    """A label of the Service itself: a qualified key and a label value, as the selector's rows."""

    key = forms.CharField(label=_("Label key"), required=False, max_length=317)
    value = forms.CharField(label=_("Label value"), required=False, strip=False)


class AnnotationForm(KeyValueForm):
    key = forms.CharField(label=_("Annotation key"), required=False, max_length=317)
    value = forms.CharField(label=_("Annotation value"), required=False, strip=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A browser drops the line breaks of an <input>'s value: a value of several lines gets a textarea, which
        # keeps them (sent back as CRLF; manifest.reconciled gives an unchanged value back as it was).
        value = self.data.get(self.add_prefix("value")) if self.is_bound else self.initial.get("value")
        if isinstance(value, str) and ("\n" in value or "\r" in value):
            lines = m.unified_newlines(value).count("\n") + 1
            self.fields["value"].widget = forms.Textarea(attrs={"rows": min(lines, 12), "class": "code"})


class BaseKeyValueFormSet(RowFormSet):
    def as_dict(self) -> dict[str, str]:
        return {f.cleaned_data["key"]: f.cleaned_data["value"] for f in self.forms if f.cleaned_data.get("key")}

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[str] = set()
        for form in self.forms:
            key = form.cleaned_data.get("key")
            if not key and form.cleaned_data.get("value"):
                form.add_error("key", _("Give a key for this value."))
            if key and key in seen:
                form.add_error("key", _("This key is already used by another row."))
            seen.add(key)


class BaseSelectorFormSet(BaseKeyValueFormSet):
    required = True

    def clean(self) -> None:
        super().clean()
        if not any(self.errors) and self.required and not self.as_dict():
            raise ValidationError(_("Add at least one label, or pick a workload's labels."), code="no_selector")


class BaseAnnotationFormSet(BaseKeyValueFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        size = sum(len(k.encode()) + len(v.encode()) for k, v in self.as_dict().items())
        if size > ANNOTATIONS_MAX_BYTES:
            raise ValidationError(
                _("Annotations may hold at most 256 KiB in all; these hold %(size)d KiB."),
                code="annotations_too_large",
                params={"size": size // 1024},
            )


SelectorFormSet = _row_formset(SelectorForm, BaseSelectorFormSet)
LabelFormSet = _row_formset(LabelForm, BaseKeyValueFormSet)
AnnotationFormSet = _row_formset(AnnotationForm, BaseAnnotationFormSet)

# Prefixes of the formsets in the POST data.
PORTS, SELECTOR, LABELS, ANNOTATIONS = "ports", "selector", "labels", "annotations"
ROWS_OF = {PORTS: PortFormSet, SELECTOR: SelectorFormSet, LABELS: LabelFormSet, ANNOTATIONS: AnnotationFormSet}
NEW_ROW = {PORTS: {"protocol": "TCP"}, SELECTOR: {}, LABELS: {}, ANNOTATIONS: {}}


class ServiceFormBundle:
    """The Service form: its sections and row formsets, bound to POST data or filled from a ServiceSpec (``spec``)
    or from plain values (``initial``, ``rows``: how ``refreshed`` re-renders what was typed).

    ``live_labels`` are the labels of the Service edited: POST data without label rows (a page from before the form
    offered labels, a script) stands for them, so such an edit leaves the labels exactly as they were."""

    def __init__(
        self,
        *,
        data: Any = None,
        spec: m.ServiceSpec | None = None,
        initial: dict[str, Any] | None = None,
        rows: dict[str, list[dict]] | None = None,
        editing: bool = False,
        name: str | None = None,
        resource_version: str = "",
        selector_required: bool = True,
        admin_features: bool = False,
        urls: dict[str, str] | None = None,
        live_labels: dict[str, str] | None = None,
        base: m.ServiceSpec | None = None,
        ports_required: bool = True,
        opened: str = "",
    ) -> None:
        self.urls = urls or {}
        # The Service being edited, as the form was filled from it: what the form does not offer is taken from
        # here, and a value it holds stays acceptable (``Section.held``).
        self.base = base
        self.notices: list[str] = []
        if data is not None and f"{LABELS}-TOTAL_FORMS" not in data:
            data = data.copy()
            data.update(_rows_data(LABELS, _key_values(live_labels or {})))
        initial = dict(initial or {})
        rows = dict(rows or {})
        if spec is not None:
            values = dataclasses.asdict(spec)
            rows = {PORTS: values.pop(PORTS), SELECTOR: _key_values(spec.selector)}
            rows[LABELS] = _key_values(spec.labels or {})
            rows[ANNOTATIONS] = _key_values(spec.annotations)
            initial |= values
        if name:
            initial["name"] = name  # a disabled field is not posted: Django takes it from here
        bound = (data,) if data is not None else ()
        held = {key: value for key, value in dataclasses.asdict(base).items() if key != PORTS} if base else {}
        options = {"initial": initial, "urls": self.urls, "held": held}
        self.basics = BasicsForm(*bound, editing=editing, admin_features=admin_features, **options)
        shown = self.basics["type"].value()
        self.service_type = shown if shown in m.SERVICE_TYPES else m.CLUSTER_IP
        self.basics.service_type = self.service_type
        options["service_type"] = self.service_type
        self.traffic = TrafficForm(*bound, **options)
        self.metallb_pools: list[dict] | None = None  # ``offer_ip_pools``
        self.affinity = AffinityForm(*bound, **options)
        self.advanced = AdvancedForm(*bound, editing=editing, admin_features=admin_features, **options)
        self.sections: tuple[Section, ...] = (self.basics, self.traffic, self.affinity, self.advanced)
        if base is not None and not opened:
            opened = opened_token(base)
        self.lock = LockForm(*bound, initial={"resource_version": resource_version, "opened": opened}, editing=editing)
        row_options = {"form_kwargs": {"service_type": self.service_type, "urls": self.urls}}
        self.formsets: dict[str, RowFormSet] = {}
        for prefix, formset in ROWS_OF.items():
            if data is not None:
                self.formsets[prefix] = formset(data, prefix=prefix, **row_options)
            else:
                # Ports and selector start with one empty row to fill in; labels and annotations with none, and so
                # do the ports of a Service edited without any (ExternalName, headless).
                empty = prefix in (LABELS, ANNOTATIONS) or (prefix == PORTS and editing and spec is not None)
                start = rows.get(prefix) or ([] if empty else [dict(NEW_ROW[prefix])])
                self.formsets[prefix] = formset(initial=start, prefix=prefix, **row_options)
        self.ports, self.selector = self.formsets[PORTS], self.formsets[SELECTOR]
        self.labels, self.annotations = self.formsets[LABELS], self.formsets[ANNOTATIONS]
        self.ports.required = ports_required
        if self.service_type == m.EXTERNAL_NAME:
            # An ExternalName Service is a DNS alias: it selects no pods and may list no ports.
            selector_required = self.ports.required = False
        self.selector.required = selector_required

    @classmethod
    def refreshed(cls, data: Any, change: Any = None, **options: Any) -> ServiceFormBundle:
        """The form re-rendered from what was posted, without judging it (a type switch, a row added or removed):
        the bound forms' values become the new form's initial values, and ``change(values, rows)`` may alter
        them first."""
        bound = cls(data=data, **options)
        values = {field.name: field.value() for section in bound.sections for field in section}
        rows = {prefix: [_row_values(form) for form in formset.forms] for prefix, formset in bound.formsets.items()}
        if change is not None:
            change(values, rows)
        dropped = False
        for prefix, formset in bound.formsets.items():
            if formset.dropped_rows or len(rows[prefix]) > MAX_ROWS:
                del rows[prefix][MAX_ROWS:]
                dropped = True
        options.pop("name", None)
        version = bound.lock["resource_version"].value() or ""
        opened = bound.lock["opened"].value() or ""
        refreshed = cls(initial=values, rows=rows, **{**options, "resource_version": version, "opened": opened})
        if dropped:
            refreshed.notices = [RowFormSet.default_error_messages["too_many_forms"] % {"num": MAX_ROWS}]
        return refreshed

    def offer_ip_pools(self, pools: list[dict] | None) -> None:
        """MetalLB's pools (``services.api.ip_pools``; None: no MetalLB): their names are the pool field's choices,
        and the pools themselves explain an address that would stay pending."""
        self.metallb_pools = pools
        self.traffic.offer_ip_pools(None if pools is None else sorted({p["metadata"]["name"] for p in pools}))

    def is_valid(self) -> bool:
        # Evaluate every part so every error is shown at once.
        results = [form.is_valid() for form in (*self.sections, self.lock, *self.formsets.values())]
        return all(results)

    def spec(self, namespace: str) -> m.ServiceSpec:
        """The ServiceSpec the valid form describes: its sections' cleaned data merged, and the rows."""
        merged: dict[str, Any] = {}
        for section in self.sections:
            merged |= section.cleaned_data
        values = {
            "namespace": namespace,
            "ports": [m.PortSpec(**form.cleaned_data) for form in self.ports.forms if form.cleaned_data],
            "selector": self.selector.as_dict(),
            "labels": self.labels.as_dict(),
            "annotations": self.annotations.as_dict(),
            **merged,
        }
        # An edit: what the form does not offer (a Cluster Admin's field, say) is the Service's own.
        return dataclasses.replace(self.base, **values) if self.base else m.ServiceSpec(**values)

    @property
    def resource_version(self) -> str:
        return self.lock.cleaned_data["resource_version"].strip()

    def opened_spec(self) -> m.ServiceSpec | None:
        """The Service as this form was filled from it (None when the form does not say)."""
        return spec_of_token(self.lock.cleaned_data.get("opened") or "")

    def __getitem__(self, name: str) -> forms.BoundField:
        """A field of any section (or the lock) by name."""
        for form in (*self.sections, self.lock):
            if name in form.fields:
                return form[name]
        raise KeyError(name)

    @property
    def errors(self) -> dict[str, Any]:
        """Every section's field errors in one mapping."""
        merged: dict[str, Any] = {}
        for form in self.sections:
            merged |= form.errors
        return merged

    def non_field_errors(self) -> list[str]:
        return [error for form in (self.lock, *self.sections) for error in form.non_field_errors()]

    def add_error(self, field: str | None, error: Any) -> None:
        section = next((form for form in self.sections if field in form.fields), self.basics)
        section.add_error(field, error)

    @property
    def has_errors(self) -> bool:
        return bool(
            any(form.errors for form in (*self.sections, self.lock))
            or any(any(formset.errors) or formset.non_form_errors() for formset in self.formsets.values())
        )

    def load_balancer_preview(self, namespace: str) -> dict | None:
        """The LoadBalancer Service as typed so far (judged or not), for the pending-address explanation before it
        is created; None for another type."""
        if self.service_type != m.LOAD_BALANCER:
            return None
        traffic, advanced = self.traffic, self.advanced

        def typed(form: forms.Form, name: str) -> str:
            return str(form[name].value() or "").strip() if name in form.fields else ""

        annotations, spec = {}, {"type": m.LOAD_BALANCER}
        if typed(traffic, "lb_type") != m.OTHER_LB:
            if typed(traffic, "metallb_pool"):
                annotations[m.METALLB_POOL] = typed(traffic, "metallb_pool")
            if typed(traffic, "lb_address"):
                annotations[m.METALLB_IPS] = typed(traffic, "lb_address")
        elif typed(traffic, "lb_address"):
            spec["loadBalancerIP"] = typed(traffic, "lb_address")
        if typed(advanced, "load_balancer_class"):
            spec["loadBalancerClass"] = typed(advanced, "load_balancer_class")
        labels = {}
        for form in self.labels.forms:
            key, value = (str(form[name].value() or "").strip() for name in ("key", "value"))
            if key:
                labels[key] = value
        metadata = {"namespace": namespace, "annotations": annotations, "labels": labels}
        return {"metadata": metadata, "spec": spec}

    def selector_labels(self) -> dict[str, str]:
        """The selector as typed so far (judged or not), for the "matches N pods" hint."""
        labels = {}
        for form in self.selector.forms:
            key, value = (str(form[name].value() or "").strip() for name in ("key", "value"))
            if key:
                labels[key] = value
        return labels

    def node_ports(self) -> dict[str, int]:
        """The node ports typed so far, by their fields' names: the live checks judge them as they are typed."""
        if self.service_type not in (m.NODE_PORT, m.LOAD_BALANCER):
            return {}
        typed = {form["node_port"].html_name: m.parse_number(form["node_port"].value()) for form in self.ports.forms}
        return {html_name: port for html_name, port in typed.items() if port is not None}

    def refused(self, error: Exception, *, editing: bool) -> bool:
        """Put the API server's refusal on the form; True when it was a conflict (someone changed the Service)."""
        if not isinstance(error, kube.ApiError):
            self.add_error(None, str(error))
            return False
        if error.status == 409 and editing:
            self.add_error(
                None,
                _(
                    "Someone changed this Service after you opened it. Your input is kept below; reload to start "
                    "from the current version."
                ),
            )
            return True
        if error.status == 409:
            name = self.basics.cleaned_data.get("name", "")
            self.add_error("name", _("A Service named “%(name)s” already exists in this namespace.") % {"name": name})
        elif error.status == 404 and editing:
            self.add_error(None, _("This Service was deleted meanwhile."))
        else:
            apply_api_errors(self, error.causes, error.message)
        return False


_OPENED_SALT = "services.form.opened"


def opened_token(spec: m.ServiceSpec) -> str:
    """``spec`` signed and compressed, for the form to carry."""
    return signing.dumps(dataclasses.asdict(spec), salt=_OPENED_SALT, compress=True)


def spec_of_token(token: str) -> m.ServiceSpec | None:
    try:
        values = signing.loads(token, salt=_OPENED_SALT)
        ports = [m.PortSpec(**port) for port in values.pop(PORTS)]
        return m.ServiceSpec(**values, ports=ports)
    except (signing.BadSignature, TypeError, KeyError, AttributeError, ValueError):
        return None


def _key_values(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in mapping.items()]


def _rows_data(prefix: str, rows: list[dict[str, str]]) -> dict[str, str]:
    """``rows`` as a formset's POST data."""
    data = {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": "0"}
    for index, row in enumerate(rows):
        data |= {f"{prefix}-{index}-{name}": value for name, value in row.items()}
    return data


def _row_values(form: forms.Form) -> dict[str, Any]:
    return {name: form[name].value() for name in form.fields}


# --- API server errors onto fields ------------------------------------------------------------------------------

# Where the API server's name of a field (its path, in camelCase) is not the form's (the spec's, in snake_case).
_RENAMED = {
    "metadata.name": "name",
    "spec.sessionAffinityConfig.clientIP.timeoutSeconds": "session_timeout",
    "spec.loadBalancerIP": "lb_address",
    "spec.clusterIP": "headless",
}
_PORT_PATH = re.compile(r"^spec\.ports\[([0-9]{1,3})\](?:\.(\w+))?")
_SPEC_PATH = re.compile(r"^spec\.(\w+)")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def apply_api_errors(bundle: ServiceFormBundle, causes: list[dict[str, str]], message: str) -> None:
    """Put the API server's 422 causes on the fields they name (a field named as in the spec needs no entry
    here); anything unmatched goes on the form."""
    placed = False
    for cause in causes:
        path, text = cause.get("field", ""), explained(cause.get("message", ""))
        port_path, spec_path = _PORT_PATH.match(path), _SPEC_PATH.match(path)
        field = _RENAMED.get(path) or (_snake(spec_path.group(1)) if spec_path else "")
        if port_path and int(port_path.group(1)) < len(bundle.ports.forms):
            form = bundle.ports.forms[int(port_path.group(1))]
            name = _snake(port_path.group(2) or "")
            form.add_error(name if name in form.fields else None, text)
        elif path.startswith("spec.selector"):
            bundle.selector._non_form_errors = bundle.selector.error_class([text])  # noqa: SLF001
        elif path.startswith("metadata.labels"):
            bundle.labels._non_form_errors = bundle.labels.error_class([text])  # noqa: SLF001
        elif path.startswith("metadata.annotations"):
            bundle.annotations._non_form_errors = bundle.annotations.error_class([text])  # noqa: SLF001
        elif any(field in section.fields and field not in section.kept_hidden for section in bundle.sections):
            bundle.add_error(field, text)
        elif path:
            bundle.add_error(None, f"{path}: {text}")
        else:
            continue
        placed = True
    if not placed:
        bundle.add_error(None, explained(message))


# The API server's warnings that the console's own fields can cause, said again in the user's language.
_DEPRECATED_VALUE = re.compile(r'^(?P<field>spec\.\w+): "(?P<old>\w+)" is deprecated; use "(?P<new>\w+)"$')
_DEPRECATED_ANNOTATION = re.compile(r"^annotation (?P<old>\S+) is deprecated, please use (?P<new>\S+) instead$")
_DEPRECATED_EXTERNAL_IPS = "spec.externalIPs is deprecated and may no longer be implemented in some clusters"


def explained_warning(text: str) -> str:
    """One of the API server's warnings (``kube.call``'s ``warnings``), in the user's language when it is a known
    one; anything else as sent."""
    if found := _DEPRECATED_VALUE.match(text):
        return str(_("%(field)s: “%(old)s” is deprecated; use “%(new)s”.") % found.groupdict())
    if found := _DEPRECATED_ANNOTATION.match(text):
        return str(_("The annotation %(old)s is deprecated; use %(new)s instead.") % found.groupdict())
    if text == _DEPRECATED_EXTERNAL_IPS:
        return str(_("spec.externalIPs is deprecated and may not be implemented in some clusters."))
    return text


def warning_notices(texts: list[str]) -> list[str]:
    """The API server's warnings as the console shows them, beside the form or as messages."""
    return [str(_("Warning from the API server: %(text)s") % {"text": explained_warning(text)}) for text in texts]


# --- YAML ------------------------------------------------------------------------------------------------------

YAML_MAX_BYTES = 512 * 1024


def service_from_yaml(text: str, namespace: str, name: str | None) -> dict:
    """The one Service a YAML text may hold, to create (``name`` None: what the API server sets is left out) or to
    replace the Service ``name`` (its resourceVersion required); raises ValueError with a message for the user."""
    document = load_yaml_document(text, YAML_MAX_BYTES)
    if not isinstance(document, dict):
        raise ValueError(_("The YAML must be a mapping describing one Service."))
    if document.get("apiVersion") != "v1" or document.get("kind") != "Service":
        raise ValueError(_("Only a Service (apiVersion: v1, kind: Service) can be created or edited here."))
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ValueError(_("Give the Service a name under metadata.name."))
    if name is None:
        try:
            validate_new_name(metadata["name"])  # the form's rule: one rule for every new Service
        except ValidationError as error:
            raise ValueError(_("metadata.name: %(reason)s") % {"reason": error.messages[0]}) from None
    if len(metadata["name"]) > 63 or not DNS1035_LABEL.match(metadata["name"]):
        # The API server would judge this too, but it reports an IP allocation failure first.
        raise ValueError(
            _("metadata.name must be at most 63 lowercase letters, digits and '-', starting with a letter.")
        )
    if not isinstance(document.get("spec", {}), dict):
        raise ValueError(_("spec must be a mapping."))
    given = metadata.get("namespace")
    if given not in (None, "", namespace):
        raise ValueError(
            _("This Service belongs in namespace “%(namespace)s”; the YAML names another.") % {"namespace": namespace}
        )
    metadata["namespace"] = namespace
    if name is None:
        return m.without_server_fields(document)
    if metadata["name"] != name:
        raise ValueError(_("A Service cannot be renamed; create a new one instead."))
    version = metadata.get("resourceVersion")
    if isinstance(version, int) and not isinstance(version, bool):
        metadata["resourceVersion"] = version = str(version)
    if not isinstance(version, str) or not version.strip():
        # Without it the API server would take the write whatever changed meanwhile (last write wins).
        raise ValueError(
            _(
                "Keep metadata.resourceVersion: it says which version of the Service you edited, so that a change "
                "made meanwhile is not overwritten."
            )
        )
    number = m.parse_number(version.strip(), max_digits=20)
    if number is None or number < 0:
        # The API server reads it as an unsigned number and fails (HTTP 500) on anything else.
        raise ValueError(
            _(
                "metadata.resourceVersion must be the number the Service had when you opened it; reload the page "
                "to start from the current version."
            )
        )
    return document
