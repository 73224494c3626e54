"""The Service form: one main form and three formsets (ports, selector, annotations).

The rules here mirror the API server's validation (k8s pkg/apis/core/validation) so most mistakes are caught with
a clear message before a request is made; the API server stays the judge, and its 422 causes are put on the
matching fields by ``apply_api_errors``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from kube import load_yaml_document
from services import manifest as m

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
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


def parse_target_port(value: str) -> int | str | None:
    """A number 1–65535 (sent as an int) or an IANA service name (sent as a string); empty means 'same as port'."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        number = int(value)
        if not 1 <= number <= 65535:
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


class ServiceForm(forms.Form):
    error_messages = {
        "name_length": _("The name must be 4 to 63 characters long."),
        "name_format": _(
            "Use lowercase letters, digits and '-', starting with a lowercase letter and ending with a letter or digit."
        ),
    }

    type = forms.ChoiceField(
        label=_("Access type"),
        choices=[
            (m.CLUSTER_IP, _("Cluster access (ClusterIP)")),
            (m.NODE_PORT, _("Node access (NodePort)")),
            (m.LOAD_BALANCER, _("Load balancer (LoadBalancer)")),
        ],
        initial=m.CLUSTER_IP,
        widget=forms.RadioSelect,
    )
    name = forms.CharField(label=_("Service name"), max_length=63, required=True)
    session_affinity = forms.BooleanField(label=_("Session affinity"), required=False)
    session_timeout = forms.IntegerField(
        label=_("Session affinity maximum duration (seconds)"),
        min_value=1,
        max_value=86400,
        initial=m.DEFAULT_SESSION_TIMEOUT,
        required=False,
    )
    external_traffic_policy = forms.ChoiceField(
        label=_("External traffic policy"),
        choices=[("Cluster", _("Cluster")), ("Local", _("Local"))],
        initial="Cluster",
        required=False,
        widget=forms.RadioSelect,
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
    # Advanced (a collapsed section).
    internal_traffic_policy = forms.ChoiceField(
        label=_("Internal traffic policy"),
        choices=[("", _("Default (Cluster)")), ("Cluster", "Cluster"), ("Local", "Local")],
        required=False,
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
    load_balancer_source_ranges = forms.CharField(
        label=_("Load balancer source ranges"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Client address ranges allowed through the load balancer, one CIDR per line, e.g. 203.0.113.0/24."),
    )
    # Cluster Admin only.
    headless = forms.BooleanField(
        label=_("Headless (no cluster IP)"),
        required=False,
        help_text=_("DNS returns the pods' addresses directly. Only when creating."),
    )
    external_ips = forms.CharField(
        label=_("External IPs"),
        required=False,
        help_text=_("Addresses on the nodes that also accept traffic for this Service, comma-separated."),
    )
    external_name = forms.CharField(
        label=_("External name"), required=False, max_length=253, help_text=_("A DNS name, e.g. db.example.com.")
    )
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput)

    ADMIN_ONLY = ("headless", "external_ips", "external_name")

    def __init__(
        self,
        *args: Any,
        editing: bool = False,
        ip_pools: list[str] | None = None,
        admin_features: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.editing = editing
        self.ip_pools = ip_pools
        self.admin_features = admin_features
        if editing:
            self.fields["name"].disabled = True
            self.fields["headless"].disabled = True  # the cluster IP cannot change once set
        if admin_features:
            self.fields["type"].choices = [
                *self.fields["type"].choices,
                (m.EXTERNAL_NAME, _("External name (ExternalName)")),
            ]
        else:
            # Not offered, so not accepted either: a posted value for these is ignored, and an edit keeps the
            # Service's own.
            for name in self.ADMIN_ONLY:
                del self.fields[name]
        if ip_pools:
            self.fields["metallb_pool"] = forms.ChoiceField(
                label=_("MetalLB IP pool"), choices=[("", "—")] + [(p, p) for p in ip_pools], required=False
            )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if self.editing:
            return name  # an existing name is whatever the cluster accepted; it cannot change
        if not 4 <= len(name) <= 63:
            raise ValidationError(self.error_messages["name_length"], code="name_length")
        if not DNS1035_LABEL.match(name):
            raise ValidationError(self.error_messages["name_format"], code="name_format")
        return name

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

    def clean_load_balancer_class(self) -> str:
        value = self.cleaned_data["load_balancer_class"].strip()
        if value:
            validate_qualified_name(value)
        return value

    def clean_load_balancer_source_ranges(self) -> list[str]:
        ranges = self.cleaned_data["load_balancer_source_ranges"].replace(",", "\n").split()
        try:
            for cidr in ranges:
                ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ValidationError(_("Give address ranges in CIDR form, such as 203.0.113.0/24."), code="cidr") from None
        return ranges

    def clean_external_ips(self) -> list[str]:
        addresses = self.cleaned_data["external_ips"].replace(",", " ").split()
        try:
            for address in addresses:
                ipaddress.ip_address(address)
        except ValueError:
            raise ValidationError(_("Give IP addresses such as 192.0.2.10, separated by commas."), code="ip") from None
        return addresses

    def clean_external_name(self) -> str:
        value = self.cleaned_data["external_name"].strip().rstrip(".")
        if value and (len(value) > 253 or not DNS1123_SUBDOMAIN.match(value)):
            raise ValidationError(_("Give a DNS name such as db.example.com (lowercase)."), code="dns_name")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if (
            cleaned.get("type") == m.EXTERNAL_NAME
            and "external_name" in self.fields
            and not cleaned.get("external_name")
        ):
            self.add_error("external_name", _("An ExternalName Service needs the DNS name it points to."))
        if cleaned.get("session_affinity") and not cleaned.get("session_timeout"):
            self.add_error("session_timeout", _("Give a duration between 1 and 86400 seconds."))
        if cleaned.get("type") == m.LOAD_BALANCER and cleaned.get("lb_type") == m.METALLB:
            if self.ip_pools is None and cleaned.get("metallb_pool"):
                self.add_error("metallb_pool", _("This cluster has no MetalLB installed (no IPAddressPool type)."))
            elif self.ip_pools is not None and not cleaned.get("metallb_pool"):
                self.add_error("metallb_pool", _("Choose the MetalLB IP pool."))
        return cleaned


class PortForm(forms.Form):
    protocol = forms.ChoiceField(
        label=_("Protocol"), choices=[("TCP", "TCP"), ("UDP", "UDP"), ("SCTP", "SCTP")], initial="TCP"
    )
    name = forms.CharField(label=_("Port name"), required=False, max_length=63)
    port = forms.IntegerField(label=_("Service port"), min_value=1, max_value=65535)
    target_port = forms.CharField(
        label=_("Container port"),
        required=False,
        max_length=15,
        widget=forms.TextInput(attrs={"list": "named-ports", "autocomplete": "off"}),
    )
    node_port = forms.IntegerField(label=_("Node port"), required=False, min_value=1, max_value=65535)

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


class BasePortFormSet(forms.BaseFormSet):
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


PortFormSet = forms.formset_factory(PortForm, formset=BasePortFormSet, extra=0, min_num=0)


class KeyValueForm(forms.Form):
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


class BaseKeyValueFormSet(forms.BaseFormSet):
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


SelectorFormSet = forms.formset_factory(SelectorForm, formset=BaseSelectorFormSet, extra=0)
AnnotationFormSet = forms.formset_factory(KeyValueForm, formset=BaseAnnotationFormSet, extra=0)

# Prefixes of the formsets in the POST data.
PORTS, SELECTOR, ANNOTATIONS = "ports", "selector", "annotations"


class ServiceFormBundle:
    """The main form with its formsets, built from POST data or from a ServiceSpec."""

    def __init__(
        self,
        *,
        data: Any = None,
        spec: m.ServiceSpec | None = None,
        rows: dict[str, list[dict]] | None = None,
        editing: bool = False,
        selector_required: bool = True,
        ip_pools: list[str] | None = None,
        resource_version: str = "",
        initial: dict | None = None,
        admin_features: bool = False,
    ) -> None:
        options = {"editing": editing, "ip_pools": ip_pools, "admin_features": admin_features}
        if data is not None:
            self.form = ServiceForm(data, initial=initial, **options)
            self.ports = PortFormSet(data, prefix=PORTS)
            self.selector = SelectorFormSet(data, prefix=SELECTOR)
            self.annotations = AnnotationFormSet(data, prefix=ANNOTATIONS)
        else:
            rows = rows or {}
            if spec is not None:
                initial = {**(initial or {}), **initial_from_spec(spec), "resource_version": resource_version}
                rows = rows_from_spec(spec)
            self.form = ServiceForm(initial=initial, **options)
            self.ports = PortFormSet(initial=rows.get(PORTS) or [{"protocol": "TCP"}], prefix=PORTS)
            self.selector = SelectorFormSet(initial=rows.get(SELECTOR) or [{}], prefix=SELECTOR)
            self.annotations = AnnotationFormSet(initial=rows.get(ANNOTATIONS) or [], prefix=ANNOTATIONS)
        if self.form["type"].value() == m.EXTERNAL_NAME:
            # An ExternalName Service is a DNS alias: it selects no pods and may list no ports.
            selector_required = self.ports.required = False
        self.selector.required = selector_required

    def is_valid(self) -> bool:
        # Evaluate all four so every error is shown at once.
        results = [self.form.is_valid(), self.ports.is_valid(), self.selector.is_valid(), self.annotations.is_valid()]
        return all(results)

    def spec(self, namespace: str) -> m.ServiceSpec:
        data = self.form.cleaned_data
        return m.ServiceSpec(
            name=data["name"],
            namespace=namespace,
            type=data["type"],
            selector=self.selector.as_dict(),
            ports=[
                m.PortSpec(
                    port=f.cleaned_data["port"],
                    protocol=f.cleaned_data["protocol"],
                    name=f.cleaned_data["name"],
                    target_port=f.cleaned_data["target_port"],
                    node_port=f.cleaned_data["node_port"],
                )
                for f in self.ports.forms
                if f.cleaned_data
            ],
            session_affinity=data["session_affinity"],
            session_timeout=data["session_timeout"] or m.DEFAULT_SESSION_TIMEOUT,
            annotations=self.annotations.as_dict(),
            external_traffic_policy=data["external_traffic_policy"] or "Cluster",
            lb_type=data["lb_type"] or m.METALLB,
            metallb_pool=data["metallb_pool"] or "",
            lb_address=data["lb_address"].strip(),
            internal_traffic_policy=data["internal_traffic_policy"],
            ip_family_policy=data["ip_family_policy"],
            load_balancer_class=data["load_balancer_class"],
            load_balancer_source_ranges=data["load_balancer_source_ranges"],
            external_ips=data.get("external_ips") if "external_ips" in data else None,
            headless=data.get("headless") if "headless" in data else None,
            external_name=data.get("external_name", ""),
        )

    @property
    def has_errors(self) -> bool:
        return bool(
            self.form.errors
            or any(self.ports.errors)
            or self.ports.non_form_errors()
            or any(self.selector.errors)
            or self.selector.non_form_errors()
            or any(self.annotations.errors)
            or self.annotations.non_form_errors()
        )


def initial_from_spec(spec: m.ServiceSpec) -> dict[str, Any]:
    return {
        "type": spec.type,
        "name": spec.name,
        "session_affinity": spec.session_affinity,
        "session_timeout": spec.session_timeout,
        "external_traffic_policy": spec.external_traffic_policy,
        "lb_type": spec.lb_type,
        "metallb_pool": spec.metallb_pool,
        "lb_address": spec.lb_address,
        "internal_traffic_policy": spec.internal_traffic_policy,
        "ip_family_policy": spec.ip_family_policy,
        "load_balancer_class": spec.load_balancer_class,
        "load_balancer_source_ranges": "\n".join(spec.load_balancer_source_ranges),
        "external_ips": ", ".join(spec.external_ips or []),
        "headless": bool(spec.headless),
        "external_name": spec.external_name,
    }


def rows_from_spec(spec: m.ServiceSpec) -> dict[str, list[dict]]:
    return {
        PORTS: [
            {
                "protocol": p.protocol,
                "name": p.name,
                "port": p.port,
                "target_port": "" if p.target_port is None else str(p.target_port),
                "node_port": p.node_port or "",
            }
            for p in spec.ports
        ],
        SELECTOR: [{"key": k, "value": v} for k, v in spec.selector.items()],
        ANNOTATIONS: [{"key": k, "value": v} for k, v in spec.annotations.items()],
    }


_ROW_FIELDS = {
    PORTS: ("protocol", "name", "port", "target_port", "node_port"),
    SELECTOR: ("key", "value"),
    ANNOTATIONS: ("key", "value"),
}
MAX_ROWS = 100


def rows_from_post(data: Any) -> dict[str, list[dict]]:
    """The rows exactly as typed (unvalidated), to re-render the form after a type switch or a row change."""
    rows: dict[str, list[dict]] = {}
    for prefix, fields in _ROW_FIELDS.items():
        try:
            total = min(int(data.get(f"{prefix}-TOTAL_FORMS", 0)), MAX_ROWS)
        except ValueError:
            total = 0
        rows[prefix] = [{name: data.get(f"{prefix}-{i}-{name}", "") for name in fields} for i in range(total)]
    return rows


def initial_from_post(data: Any) -> dict[str, Any]:
    fields = ServiceForm.base_fields
    booleans = ("session_affinity", "headless")
    initial = {name: data.get(name, "") for name in fields if name not in booleans}
    for name in booleans:
        initial[name] = data.get(name) in ("on", "true", "1")
    return initial


# --- API server errors onto fields ------------------------------------------------------------------------------

_PORT_FIELD = {
    "port": "port",
    "name": "name",
    "protocol": "protocol",
    "targetPort": "target_port",
    "nodePort": "node_port",
}
_MAIN_FIELD = {
    "metadata.name": "name",
    "spec.type": "type",
    "spec.sessionAffinity": "session_affinity",
    "spec.sessionAffinityConfig.clientIP.timeoutSeconds": "session_timeout",
    "spec.externalTrafficPolicy": "external_traffic_policy",
    "spec.loadBalancerIP": "lb_address",
}
_PORT_PATH = re.compile(r"^spec\.ports\[(\d+)\](?:\.(\w+))?")


def apply_api_errors(bundle: ServiceFormBundle, causes: list[dict[str, str]], message: str) -> None:
    """Put the API server's 422 causes on the fields they name; anything unmatched goes on the form."""
    placed = False
    for cause in causes:
        path, text = cause.get("field", ""), cause.get("message", "")
        match = _PORT_PATH.match(path)
        if match and int(match.group(1)) < len(bundle.ports.forms):
            field = _PORT_FIELD.get(match.group(2) or "")
            bundle.ports.forms[int(match.group(1))].add_error(field, text)
            placed = True
        elif path in _MAIN_FIELD:
            bundle.form.add_error(_MAIN_FIELD[path], text)
            placed = True
        elif path.startswith("spec.selector"):
            bundle.selector._non_form_errors = bundle.selector.error_class([text])  # noqa: SLF001
            placed = True
        elif path.startswith("metadata.annotations"):
            bundle.annotations._non_form_errors = bundle.annotations.error_class([text])  # noqa: SLF001
            placed = True
        elif path:
            bundle.form.add_error(None, f"{path}: {text}")
            placed = True
    if not placed:
        bundle.form.add_error(None, message)


# --- YAML ------------------------------------------------------------------------------------------------------

YAML_MAX_BYTES = 512 * 1024


def service_from_yaml(text: str, namespace: str, name: str | None) -> dict:
    """The one Service a YAML text may hold; raises ValueError with a message for the user."""
    document = load_yaml_document(text, YAML_MAX_BYTES)
    if not isinstance(document, dict):
        raise ValueError(_("The YAML must be a mapping describing one Service."))
    if document.get("apiVersion") != "v1" or document.get("kind") != "Service":
        raise ValueError(_("Only a Service (apiVersion: v1, kind: Service) can be created or edited here."))
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ValueError(_("Give the Service a name under metadata.name."))
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
    if name is not None and metadata["name"] != name:
        raise ValueError(_("A Service cannot be renamed; create a new one instead."))
    return document
