"""The same Service elsewhere: copy a Service to other clusters and namespaces.

The user lists targets (a cluster and namespace where they may edit, with per-target overrides: name, node ports,
MetalLB pool), previews them (per target: the target API server's dry run, the node ports a dry run cannot judge,
and a diff), then creates them. Each target is checked against the user's roles on every request, each create is
audited on its own, and a target that fails leaves the others as they are. The targets offered are only those the
user may edit, so a posted target they hold no grant on is refused exactly as one that does not exist.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

import kube
from clusters import audit
from clusters.access import Access, every_cluster, namespace_access
from services import api, listing, live_checks
from services import copying as c
from services import manifest as m
from services.forms import DNS1035_LABEL, NumberField, warning_notices
from services.views import answers_failures, get_service_or_gone

PREFIX = "targets"
MAX_TARGETS = 20


def urls(route: str) -> list:
    """The copy pages' URL patterns under ``route`` (a Service's ``.../copy/``): the form and its preview, the
    create, and one URL per interaction of the form."""
    return [
        path(route, copy_service, name="copy"),
        path(f"{route}create/", copy_create, name="copy_create"),
        path(f"{route}refresh/", copy_refresh, name="copy_refresh"),
        path(f"{route}targets/add/", copy_add_target, name="copy_add_target"),
        path(f"{route}targets/remove/", copy_remove_target, name="copy_remove_target"),
    ]


# --- where the user may copy to ----------------------------------------------------------------------------------


@dataclass
class Targets:
    """Every cluster/namespace the user may edit (choice value "cluster/namespace" → the user's access to that
    cluster), as grouped choices, and a note per cluster that could not say which namespaces it has."""

    accesses: dict[str, Access] = field(default_factory=dict)
    choices: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def editable_targets(request: HttpRequest) -> Targets:
    """Read from the user's grants (``clusters.access``); a cluster-wide editor's namespaces are the cluster's own,
    asked only once the grants say they may edit there."""
    targets = Targets()
    for access in every_cluster(request):
        namespaces = sorted(ns for ns in access.namespace_roles if access.can_edit(ns))
        if access.can_edit_cluster:
            try:
                namespaces = kube.list_namespaces(access.actor)
            except kube.ClusterUnavailable as error:
                targets.notes.append(
                    _("The namespaces of cluster %(cluster)s could not be listed: %(error)s")
                    % {"cluster": access.cluster.label, "error": error}
                )
        group = []
        for namespace in namespaces:
            if access.can_edit(namespace):  # the grants judge again, whatever the cluster listed
                value = c.target_value(access.cluster.name, namespace)
                targets.accesses[value] = access
                group.append((value, f"{access.cluster.label} / {namespace}"))  # the closed select names both
        if group:
            targets.choices.append((access.cluster.label, group))
    return targets


# --- the form: one row per target -------------------------------------------------------------------------------


class TargetForm(forms.Form):
    """One target and its overrides. The node port and pool fields exist only for a source they mean something
    for; the pool's choices are the MetalLB pools of the row's chosen cluster."""

    error_messages = {
        "invalid_name": gettext_lazy(
            "Use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit."
        ),
    }

    # The same words for a target that does not exist and one the user may not edit: neither is on the list.
    target = forms.ChoiceField(
        label=gettext_lazy("Cluster and namespace"),
        error_messages={"invalid_choice": gettext_lazy("Choose a cluster and namespace from the list.")},
    )
    name = forms.CharField(
        label=gettext_lazy("Name"),
        required=False,
        max_length=63,
        help_text=gettext_lazy("Empty: the same name as the source."),
    )

    def __init__(
        self,
        *args: Any,
        facts: c.SourceFacts,
        targets: Targets,
        pools: dict[str, list[str] | None],
        source_name: str,
        refresh_url: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.facts = facts
        self.fields["target"].choices = [("", _("Choose a cluster and namespace")), *targets.choices]
        self.fields["name"].widget.attrs.update(placeholder=source_name, autocomplete="off")
        if facts.uses_pool:
            refresh = {
                "hx-post": refresh_url,
                "hx-trigger": "change",
                "hx-target": "#copy-form",
                "hx-swap": "outerHTML",
            }
            self.fields["target"].widget.attrs.update(refresh)
        if facts.uses_node_ports:
            # The default works for every target: keeping the source's numbers fails in its own cluster, where the
            # source holds them, and letting the cluster assign would change them needlessly in another.
            self.fields["node_ports"] = forms.ChoiceField(
                label=_("Node ports"),
                choices=[
                    (c.FREE_NODE_PORTS, _("Keep the source's where the target cluster has them free")),
                    (c.KEEP_NODE_PORTS, _("Keep the source's")),
                    (c.AUTO_NODE_PORTS, _("Let the target cluster assign them")),
                    (c.GIVEN_NODE_PORTS, _("Use these numbers")),
                ],
                initial=c.FREE_NODE_PORTS,
                widget=forms.RadioSelect,
                help_text=_(
                    "By default each node port of the source is kept where the target cluster has it free (usually "
                    "in another cluster) and the target cluster assigns another where it is taken (always in the "
                    "source's own cluster, where the source holds it)."
                ),
            )
            for index, label in enumerate(facts.port_labels):
                self.fields[f"node_port_{index}"] = NumberField(
                    label=_("Node port for %(port)s") % {"port": label},
                    required=False,
                    min_value=1,
                    max_value=65535,
                    widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
                )
        if facts.uses_pool:
            cluster, _namespace = c.split_target(str(self["target"].value() or ""))
            offered = pools.get(cluster) or []
            keep = _("Keep the source's (%(pool)s)") % {"pool": facts.pool} if facts.pool else _("Keep the source's")
            self.fields["pool"] = forms.ChoiceField(
                label=_("MetalLB IP pool"),
                choices=[(c.KEEP_POOL, keep), (c.NO_POOL, _("None")), *((pool, pool) for pool in offered)],
                initial=c.KEEP_POOL,
                help_text=_("The pools of the chosen cluster.") if offered else "",
            )
            if facts.address:
                self.fields["keep_address"] = forms.BooleanField(
                    label=_("Ask for the same load balancer address (%(address)s)") % {"address": facts.address},
                    required=False,
                )

    @property
    def node_port_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith("node_port_")]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name and not DNS1035_LABEL.match(name):
            raise ValidationError(self.error_messages["invalid_name"], code="invalid_name")
        return name

    def overrides(self) -> c.Overrides:
        """The valid row as overrides of the source."""
        data = self.cleaned_data
        given = tuple(data.get(f"node_port_{i}") for i in range(len(self.facts.port_labels)))
        return c.Overrides(
            name=data["name"],
            node_ports=data.get("node_ports", c.FREE_NODE_PORTS),
            given_node_ports=given,
            pool=data.get("pool", c.KEEP_POOL),
            keep_address=data.get("keep_address", False),
        )


class BaseTargetFormSet(forms.BaseFormSet):
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_many_forms": gettext_lazy("Copy to at most %(num)d targets at once."),
        "too_few_forms": gettext_lazy("Choose at least one target."),
        "same_target": gettext_lazy("This target is already in the list with the same name."),
    }

    def __init__(self, *args: Any, source_name: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source_name = source_name

    @property
    def dropped_rows(self) -> bool:
        return self.is_bound and self.management_form.cleaned_data.get("TOTAL_FORMS", 0) > self.absolute_max

    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[tuple[str, str]] = set()
        for form in self.forms:
            if not form.cleaned_data:
                continue
            key = (form.cleaned_data["target"], form.cleaned_data["name"] or self.source_name)
            if key in seen:
                form.add_error("name", ValidationError(self.error_messages["same_target"], code="same_target"))
            seen.add(key)


TargetFormSet = forms.formset_factory(
    TargetForm,
    formset=BaseTargetFormSet,
    extra=0,
    min_num=1,
    validate_min=True,
    max_num=MAX_TARGETS,
    absolute_max=MAX_TARGETS,
    validate_max=True,
)


# --- one copy: the source, where it may go, and the form ----------------------------------------------------------


@dataclass
class Copier:
    access: Access
    namespace: str
    source: dict
    facts: c.SourceFacts
    targets: Targets
    urls: dict[str, str]

    @property
    def name(self) -> str:
        return self.source["metadata"]["name"]

    def formset(self, data: Any = None, *, initial: list[dict] | None = None) -> BaseTargetFormSet:
        """The targets' formset, bound to ``data`` or filled with ``initial`` rows; the pools offered are those of
        the clusters the rows name."""
        pools = self._pools(data, initial or [])
        options = {
            "facts": self.facts,
            "targets": self.targets,
            "pools": pools,
            "source_name": self.name,
            "refresh_url": self.urls["refresh"],
        }
        return TargetFormSet(data, initial=initial, prefix=PREFIX, form_kwargs=options, source_name=self.name)

    def _pools(self, data: Any, initial: list[dict]) -> dict[str, list[str] | None]:
        """MetalLB's pools of every cluster a row names (only for a LoadBalancer source). A cluster that cannot be
        asked offers none here; its preview says why."""
        if not self.facts.uses_pool:
            return {}
        values = [row.get("target") for row in initial]
        if data is not None:
            values += [value for key, value in data.items() if key.startswith(f"{PREFIX}-") and key.endswith("-target")]
        pools: dict[str, list[str] | None] = {}
        for value in values:
            access = self.targets.accesses.get(str(value))
            if access is None or access.cluster.name in pools:
                continue
            try:
                found = api.ip_pools(access.actor)
            except (api.ApiError, kube.ClusterUnavailable):
                found = None
            pools[access.cluster.name] = sorted({p["metadata"]["name"] for p in found or []})
        return pools

    def target_access(self, value: str) -> Access:
        """The user's access to a chosen target, checked again: only what they may edit was offered."""
        access = self.targets.accesses.get(value)
        _cluster, namespace = c.split_target(value)
        if access is None or not access.can_edit(namespace):
            raise PermissionDenied
        return access


def _copier(request: HttpRequest, cluster: str, namespace: str, name: str) -> Copier:
    """The source (the user must be able to view it) and the targets (they must be able to edit at least one);
    a user who may edit nowhere is refused before any cluster is asked, and the refusal is audited."""
    access = namespace_access(request, cluster, namespace)
    targets = editable_targets(request)
    if not targets.accesses:
        audit.record(
            request,
            action=f"{request.method} copy",
            result="denied",
            cluster=cluster,
            namespace=namespace,
            kind="Service",
            name=name,
            detail="the user may edit Services in no namespace",
        )
        raise PermissionDenied
    source = get_service_or_gone(access, namespace, name)
    args = [cluster, namespace, name]
    page_urls = {
        "preview": reverse("services:copy", args=args),
        "create": reverse("services:copy_create", args=args),
        "refresh": reverse("services:copy_refresh", args=args),
        "add": reverse("services:copy_add_target", args=args),
        "remove": reverse("services:copy_remove_target", args=args),
        "source": reverse("services:detail", args=args),
    }
    return Copier(access, namespace, source, c.source_facts(source), targets, page_urls)


def copy_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A copy page's view, given the Copier once the user's roles allowed it."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
        return view(request, _copier(request, cluster, namespace, name))

    return login_required(answers_failures(wrapper))


# --- what each target says ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One target's answer: accepted (or created) or why not, with the diffs to show."""

    cluster: str
    namespace: str
    name: str
    ok: bool = False
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the console chose for this target, said before it acts
    warnings: list[str] = field(default_factory=list)
    diff: list[tuple[str, str]] = field(default_factory=list)
    existing_diff: list[tuple[str, str]] | None = None
    url: str = ""

    @property
    def warning_notices(self) -> list[str]:
        """The API server's warnings on the dry run or create, said as the form says them."""
        return warning_notices(self.warnings)


def _reasons(error: api.ApiError | kube.ClusterUnavailable, own: dict[str, str] | None = None) -> list[str]:
    """An API server's refusal, the known ones in the user's language, each problem once; or the cluster's silence.
    ``own``: the console's own sentence per field it judged itself (a node port, whose holder it names to a user
    who may view it), said instead of the API server's cause for that field."""
    if isinstance(error, kube.ClusterUnavailable):
        return [str(error)]
    own = own or {}
    causes = [cause for cause in error.causes if cause.get("field")]
    reasons = list(own.values())
    reasons += [
        f"{cause['field']}: {api.explained(cause.get('message', ''))}" for cause in causes if cause["field"] not in own
    ]
    if not (error.reason == "Invalid" and causes):
        # An invalid object's message is its causes again, in one sentence; any other refusal is its message.
        reasons.insert(0, api.explained(error.message))
    return list(dict.fromkeys(reasons))


def _node_port_problems(access: Access, namespace: str, manifest: dict) -> dict[str, str]:
    """``live_checks.node_port_problems`` of the node ports the copy asks for (taken, or outside the target cluster's
    range; a dry run judges neither fully), by the field of each port: ``spec.ports[0].nodePort``."""
    problems = live_checks.node_port_problems(access, namespace, c.node_ports_of(manifest), None)
    if not problems:
        return {}
    ports = (manifest.get("spec") or {}).get("ports") or []
    return {
        f"spec.ports[{index}].nodePort": problems[port["nodePort"]]
        for index, port in enumerate(ports)
        if port.get("nodePort") in problems
    }


def _where_free(access: Access, namespace: str, source: dict, overrides: c.Overrides) -> tuple[c.Overrides, list[str]]:
    """The default node ports (``c.FREE_NODE_PORTS``) made concrete for the target's cluster, and a note per source
    port it cannot keep there. A cluster that cannot say which ports it holds keeps them all: its answer to the dry
    run or the create then says why not."""
    if overrides.node_ports != c.FREE_NODE_PORTS:
        return overrides, []
    try:
        taken = api.node_ports_in_use(access.actor)
        span = api.node_port_range(access.actor, namespace)
    except (api.ApiError, kube.ClusterUnavailable):
        return overrides, []
    concrete, moved = c.node_ports_where_free(source, overrides, taken, span)
    notes = [
        _("Node port %(port)d is not free in cluster %(cluster)s: that cluster assigns another.")
        % {"port": port, "cluster": access.cluster.label}
        for port in moved
    ]
    return concrete, notes


def _existing_diff(access: Access, namespace: str, manifest: dict) -> list[tuple[str, str]] | None:
    """How the Service that already holds the name differs from the copy (None when it cannot be read)."""
    try:
        existing = api.get_service(access.actor, namespace, manifest["metadata"]["name"])
    except (api.ApiError, kube.ClusterUnavailable):
        return None
    return m.yaml_diff(c.comparable(existing), manifest)


def _target(copier: Copier, value: str, overrides: c.Overrides) -> tuple[Access, str, dict, Outcome]:
    """The user's access to a target (checked again), its namespace, the Service to ask it for, and its outcome so
    far: the diff against the source and what the console chose for it."""
    access = copier.target_access(value)
    cluster, namespace = c.split_target(value)
    overrides, notes = _where_free(access, namespace, copier.source, overrides)
    manifest = c.target_manifest(copier.source, namespace, overrides)
    diff = m.yaml_diff(c.for_diff(copier.source), manifest)
    outcome = Outcome(cluster, namespace, manifest["metadata"]["name"], notes=notes, diff=diff)
    return access, namespace, manifest, outcome


def _refused(outcome: Outcome, access: Access, manifest: dict, error: api.ApiError | kube.ClusterUnavailable) -> None:
    """Why the target refused the copy, each problem once: a node port the console's own check judged is said by it
    (naming the holder to a user who may view it), not again by the API server."""
    own = {} if isinstance(error, kube.ClusterUnavailable) else _node_port_problems(access, outcome.namespace, manifest)
    outcome.reasons = _reasons(error, own)
    if isinstance(error, api.ApiError) and error.status == 409:
        outcome.existing_diff = _existing_diff(access, outcome.namespace, manifest)


def preview_target(copier: Copier, value: str, overrides: c.Overrides) -> Outcome:
    """The target's API server's dry run of the copy, and the node ports it asks for checked (a dry run does not)."""
    access, namespace, manifest, outcome = _target(copier, value, overrides)
    try:
        api.create_service(access.actor, namespace, manifest, dry_run=True, warnings=outcome.warnings)
    except (api.ApiError, kube.ClusterUnavailable) as error:
        _refused(outcome, access, manifest, error)
        return outcome
    outcome.reasons = list(_node_port_problems(access, namespace, manifest).values())
    outcome.ok = not outcome.reasons
    return outcome


def create_target(request: HttpRequest, copier: Copier, value: str, overrides: c.Overrides) -> Outcome:
    """Create the copy in one target (the real create is the last dry run), audited whatever the answer."""
    access, namespace, manifest, outcome = _target(copier, value, overrides)
    origin = f"from {copier.access.cluster.name}/{copier.namespace}/{copier.name}"
    record = functools.partial(
        audit.record,
        request,
        action="create (copy)",
        cluster=access.cluster.name,
        namespace=namespace,
        kind="Service",
        name=outcome.name,
    )
    try:
        stored = api.create_service(access.actor, namespace, manifest, warnings=outcome.warnings)
    except (api.ApiError, kube.ClusterUnavailable) as error:
        _refused(outcome, access, manifest, error)
        record(result="failed", detail=f"{origin}: {error}")
        return outcome
    listing.remember_write(request, access, namespace, resource_version=stored["metadata"]["resourceVersion"])
    record(
        result="success",
        detail=f"{origin} uid={stored['metadata']['uid']}",
        uid=stored["metadata"]["uid"],
        resource_version=stored["metadata"]["resourceVersion"],
    )
    outcome.ok = True
    outcome.url = reverse("services:detail", args=[access.cluster.name, namespace, outcome.name])
    return outcome


# --- pages -------------------------------------------------------------------------------------------------------


def _render(
    request: HttpRequest,
    copier: Copier,
    formset: BaseTargetFormSet,
    *,
    outcomes: dict[int, Outcome] | None = None,
    created: bool = False,
    status: int = 200,
    notices: list[str] | None = None,
) -> HttpResponse:
    outcomes = outcomes or {}
    context = {
        "access": copier.access,
        "namespace": copier.namespace,
        "copier": copier,
        "source": copier.source,
        "facts": copier.facts,
        "formset": formset,
        "rows": [(index, form, outcomes.get(index)) for index, form in enumerate(formset.forms)],
        "outcomes": list(outcomes.values()),
        "previewed": bool(outcomes) and not created,
        "any_ok": any(outcome.ok for outcome in outcomes.values()),
        "created": created,
        "created_count": sum(1 for outcome in outcomes.values() if outcome.ok),
        "notices": [*copier.targets.notes, *(notices or [])],
        "urls": copier.urls,
        "max_targets": MAX_TARGETS,
        "nav": "services",
    }
    template = "services/copy.html#form" if request.htmx else "services/copy.html"
    return render(request, template, context, status=status)


def _valid_rows(formset: BaseTargetFormSet) -> list[tuple[int, TargetForm]]:
    return [(index, form) for index, form in enumerate(formset.forms) if form.cleaned_data]


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
@copy_view
def copy_service(request: HttpRequest, copier: Copier) -> HttpResponse:
    """The copy form (GET), and its preview (POST): every target's dry run and diff; nothing is stored."""
    if request.method == "GET":
        return _render(request, copier, copier.formset())
    formset = copier.formset(request.POST)
    if not formset.is_valid():
        return _render(request, copier, formset, status=422)
    outcomes = {
        index: preview_target(copier, form.cleaned_data["target"], form.overrides())
        for index, form in _valid_rows(formset)
    }
    return _render(request, copier, formset, outcomes=outcomes)


@require_POST
@copy_view
def copy_create(request: HttpRequest, copier: Copier) -> HttpResponse:
    """Create the copies, one target after the other: a failure is reported beside its target and leaves the others
    as they are. The form stays as posted, to try again."""
    formset = copier.formset(request.POST)
    if not formset.is_valid():
        return _render(request, copier, formset, status=422)
    outcomes = {
        index: create_target(request, copier, form.cleaned_data["target"], form.overrides())
        for index, form in _valid_rows(formset)
    }
    return _render(request, copier, formset, outcomes=outcomes, created=True)


# --- the form's interactions: the form again from what was posted, with one change ------------------------------


def _refreshed(
    request: HttpRequest,
    copier: Copier,
    change: Callable[[list[dict]], int | None] | None = None,
) -> HttpResponse:
    """The form re-rendered from what was posted, unjudged, with ``change`` applied to its rows; the keyboard
    continues in the row ``change`` returns (htmx focuses the autofocus element after the swap, a browser on load)."""
    bound = copier.formset(request.POST)
    rows = [{name: form[name].value() for name in form.fields} for form in bound.forms]
    focus = change(rows) if change is not None else None
    notices = []
    if bound.dropped_rows or len(rows) > MAX_TARGETS:
        del rows[MAX_TARGETS:]
        notices.append(BaseTargetFormSet.default_error_messages["too_many_forms"] % {"num": MAX_TARGETS})
    formset = copier.formset(initial=rows)
    if focus is not None and formset.forms:
        formset.forms[min(focus, len(formset.forms) - 1)].fields["target"].widget.attrs["autofocus"] = True
    return _render(request, copier, formset, notices=notices)


@require_POST
@copy_view
def copy_refresh(request: HttpRequest, copier: Copier) -> HttpResponse:
    """The form again, as typed: after a row's target changed, so its pool choices are the new cluster's."""
    return _refreshed(request, copier)


@require_POST
@copy_view
def copy_add_target(request: HttpRequest, copier: Copier) -> HttpResponse:
    def add(rows: list[dict]) -> int:
        rows.append({})
        return len(rows) - 1

    return _refreshed(request, copier, add)


@require_POST
@copy_view
def copy_remove_target(request: HttpRequest, copier: Copier) -> HttpResponse:
    index = m.parse_number(request.POST.get("row", ""), max_digits=3)

    def remove(rows: list[dict]) -> int | None:
        if index is not None and 0 <= index < len(rows):
            rows.pop(index)
            return index  # the row that took its place, or the last one
        return None

    return _refreshed(request, copier, remove)
