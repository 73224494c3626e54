"""The Service form without a cluster: its rules, its one row cap, and the spec it builds by merging its sections."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.exceptions import ValidationError

from services import forms
from services import manifest as m
from services.forms import (
    MAX_ROWS,
    ServiceFormBundle,
    apply_api_errors,
    explained_warning,
    parse_target_port,
    service_from_yaml,
    validate_label_value,
    validate_qualified_name,
    warning_notices,
)
from tests.helpers import service_form


@pytest.mark.parametrize("key", ["app", "example.com/app", "a.b-c_d", "k8s.io/x", "A1"])
def test_qualified_names_that_kubernetes_accepts(key: str) -> None:
    validate_qualified_name(key)


@pytest.mark.parametrize("key", ["", "-app", "app-", "my app", "Example.com/x", "/x", "a/", "x" * 64, "a/b/c", "名"])
def test_qualified_names_that_kubernetes_refuses(key: str) -> None:
    with pytest.raises(ValidationError):
        validate_qualified_name(key)


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("web", True), ("a.b_c-d", True), ("-a", False), ("a b", False), ("v" * 64, False), ("a\n", False)],
)
def test_label_values(value: str, ok: bool) -> None:
    if ok:
        validate_label_value(value)
    else:
        with pytest.raises(ValidationError):
            validate_label_value(value)


@pytest.mark.parametrize(
    ("value", "result"), [("", None), ("8080", 8080), ("http", "http"), ("web-1", "web-1"), (" 1 ", 1)]
)
def test_target_ports_that_are_accepted(value: str, result: int | str | None) -> None:
    assert parse_target_port(value) == result


@pytest.mark.parametrize(
    "value", ["0", "65536", "²", "٣", "9" * 5000, "Bad_Name", "a--b", "123-456", "averyveryverylongname"]
)
def test_target_ports_that_are_refused_with_a_message(value: str) -> None:
    with pytest.raises(ValidationError):
        parse_target_port(value)


def bundle(data: dict, **options) -> ServiceFormBundle:
    form = ServiceFormBundle(data=data, **options)
    form.is_valid()
    return form


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ports-0-port", "²"),
        ("ports-0-port", "٣"),
        ("ports-0-node_port", "²"),
        ("ports-0-target_port", "²"),
        ("session_timeout", "²"),
        ("ports-0-port", "9" * 5000),
        ("ports-0-node_port", "9" * 5000),
    ],
)
def test_unicode_digits_and_endless_numbers_are_refused_with_a_message(field: str, value: str) -> None:
    data = service_form("web-svc", type="NodePort", session_affinity=True) | {field: value}
    form = bundle(data)
    assert form.has_errors
    assert not form.is_valid()


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("web-svc", True),
        ("abc", False),
        ("Web-svc", False),
        ("1abc", False),
        ("abcd-", False),
        ("a" * 64, False),
        ("服务名称", False),
    ],
)
def test_name_rules_for_a_new_service(name: str, ok: bool) -> None:
    assert bundle(service_form(name)).is_valid() is ok


def test_an_edit_takes_the_name_it_edits_and_any_valid_one_is_kept() -> None:
    form = bundle(service_form("ignored", resource_version="7"), editing=True, name="db")
    assert form.is_valid() and form.spec("shop").name == "db"


def test_an_edit_without_the_version_it_started_from_is_refused() -> None:
    form = bundle(service_form("web-svc", resource_version=""), editing=True, name="web-svc")
    assert not form.is_valid()
    assert "which version of the Service" in " ".join(form.non_field_errors())


def test_the_spec_is_the_sections_merged() -> None:
    data = service_form(
        "web-svc",
        type="LoadBalancer",
        ports=[{"name": "http", "port": 80, "target_port": "8080", "node_port": "31000"}],
        selector={"app": "web"},
        annotations={"example.com/a": "b"},
        lb_type="other",
        lb_address="192.0.2.4",
        external_traffic_policy="Local",
        session_affinity=True,
        session_timeout="77",
        load_balancer_source_ranges="10.0.0.0/8\n192.168.0.0/16",
    )
    form = bundle(data)
    assert form.is_valid(), form.errors
    assert form.spec("shop") == m.ServiceSpec(
        name="web-svc",
        namespace="shop",
        type=m.LOAD_BALANCER,
        selector={"app": "web"},
        ports=[m.PortSpec(port=80, name="http", target_port=8080, node_port=31000)],
        session_affinity=True,
        session_timeout=77,
        annotations={"example.com/a": "b"},
        external_traffic_policy="Local",
        lb_type=m.OTHER_LB,
        lb_address="192.0.2.4",
        load_balancer_source_ranges=["10.0.0.0/8", "192.168.0.0/16"],
        labels={},
    )


def test_fields_a_type_does_not_show_are_neither_judged_nor_written() -> None:
    data = service_form("web-svc", ports=[{"port": 80, "node_port": "not a number"}], lb_address="<b>")
    form = bundle(data)
    assert form.is_valid(), form.errors
    assert form.spec("shop").ports[0].node_port is None and form.spec("shop").lb_address == ""


def test_a_form_filled_from_a_spec_shows_the_specs_values() -> None:
    original = m.ServiceSpec(
        name="web-svc",
        namespace="shop",
        type=m.NODE_PORT,
        selector={"app": "web"},
        ports=[m.PortSpec(port=80, name="http", target_port="http", node_port=31000)],
        load_balancer_source_ranges=["10.0.0.0/8"],
    )
    form = ServiceFormBundle(spec=original)
    assert form["type"].value() == m.NODE_PORT and form["name"].value() == "web-svc"
    assert form.ports.forms[0]["node_port"].value() == 31000
    assert form.selector.forms[0]["key"].value() == "app"
    assert dataclasses.asdict(original)["ports"][0]["target_port"] == form.ports.forms[0]["target_port"].value()


def test_more_rows_than_the_cap_are_refused_with_a_message() -> None:
    data = service_form("web-svc", ports=[{"name": f"p{i}", "port": 1000 + i} for i in range(MAX_ROWS + 5)])
    form = bundle(data)
    assert not form.is_valid()
    assert len(form.ports.forms) == MAX_ROWS
    assert f"at most {MAX_ROWS} rows" in str(form.ports.non_form_errors())


def test_a_refresh_keeps_rows_up_to_the_cap_and_says_it_dropped_the_rest() -> None:
    data = service_form("web-svc", ports=[{"name": f"p{i}", "port": 1000 + i} for i in range(MAX_ROWS + 5)])
    refreshed = ServiceFormBundle.refreshed(data | {"type": "NodePort"})
    assert len(refreshed.ports.forms) == MAX_ROWS
    assert refreshed.ports.forms[MAX_ROWS - 1]["name"].value() == f"p{MAX_ROWS - 1}"
    assert refreshed.notices and f"at most {MAX_ROWS} rows" in refreshed.notices[0]


def test_a_refresh_renders_what_was_typed_without_judging_it() -> None:
    data = service_form("Bad Name", ports=[{"port": "²", "node_port": "31000"}], session_timeout="abc")
    refreshed = ServiceFormBundle.refreshed(data | {"type": "NodePort"})
    assert not refreshed.has_errors
    assert refreshed["name"].value() == "Bad Name" and refreshed["session_timeout"].value() == "abc"
    assert refreshed.ports.forms[0]["port"].value() == "²"
    assert refreshed.ports.forms[0]["node_port"].value() == "31000"


def test_yaml_edit_needs_the_resource_version_and_create_drops_the_servers_fields() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: web-svc, resourceVersion: '5', uid: x}\nstatus: {}\n"
    created = service_from_yaml(text, "shop", None)
    assert "resourceVersion" not in created["metadata"] and "uid" not in created["metadata"]
    assert "status" not in created
    assert service_from_yaml(text, "shop", "web-svc")["metadata"]["resourceVersion"] == "5"
    with pytest.raises(ValueError, match="resourceVersion"):
        service_from_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n", "shop", "web")


def test_adding_a_row_past_the_cap_keeps_the_rows_and_says_so() -> None:
    data = service_form("web-svc", ports=[{"name": f"p{i}", "port": 1000 + i} for i in range(MAX_ROWS)])
    refreshed = ServiceFormBundle.refreshed(data, lambda values, rows: rows["ports"].append({}))
    assert len(refreshed.ports.forms) == MAX_ROWS
    assert refreshed.notices


def test_a_new_form_has_one_port_row_one_selector_row_and_no_annotation_rows() -> None:
    form = ServiceFormBundle()
    assert (len(form.ports.forms), len(form.selector.forms), len(form.annotations.forms)) == (1, 1, 0)
    assert form.ports.forms[0]["protocol"].value() == "TCP"


def test_the_api_servers_causes_land_on_the_fields_named_like_the_spec() -> None:
    form = bundle(
        service_form("web-svc", type="NodePort", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}])
    )
    assert form.is_valid()
    causes = [
        {"field": "spec.externalTrafficPolicy", "message": "bad policy"},
        {"field": "spec.ports[1].nodePort", "message": "bad node port"},
        {"field": "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "message": "bad timeout"},
        {"field": "spec.selector", "message": "bad selector"},
        {"field": "spec.somethingNew", "message": "not on the form"},
    ]
    apply_api_errors(form, causes, "refused")
    assert form.errors["external_traffic_policy"] == ["bad policy"]
    assert form.ports.forms[1].errors["node_port"] == ["bad node port"]
    assert form.errors["session_timeout"] == ["bad timeout"]
    assert list(form.selector.non_form_errors()) == ["bad selector"]
    assert "spec.somethingNew: not on the form" in form.non_field_errors()


# --- traffic distribution, not-ready addresses, labels, the API server's warnings --------------------------------


def choices(form: ServiceFormBundle, name: str) -> list[str]:
    return [value for value, _label in form[name].field.choices]


def test_a_new_form_offers_the_current_traffic_distributions_only() -> None:
    assert choices(ServiceFormBundle(), "traffic_distribution") == ["", m.PREFER_SAME_ZONE, m.PREFER_SAME_NODE]
    assert "traffic_distribution" not in ServiceFormBundle().advanced.warned


@pytest.mark.parametrize("value", ["", m.PREFER_SAME_ZONE, m.PREFER_SAME_NODE])
def test_traffic_distribution_and_not_ready_addresses_go_into_the_spec(value: str) -> None:
    form = bundle(service_form("web-svc", traffic_distribution=value, publish_not_ready_addresses=True))
    assert form.is_valid(), form.errors
    spec = form.spec("shop")
    assert (spec.traffic_distribution, spec.publish_not_ready_addresses) == (value, True)


def test_an_unknown_traffic_distribution_is_refused_with_a_message() -> None:
    form = bundle(service_form("web-svc", traffic_distribution="PreferFarAway"))
    assert not form.is_valid()
    assert "Select a valid choice" in str(form.errors["traffic_distribution"])


def test_an_edit_of_a_service_with_prefer_close_keeps_it_and_says_it_is_deprecated() -> None:
    live = m.ServiceSpec(name="web", namespace="shop", selector={"app": "web"}, ports=[m.PortSpec(port=80)])
    live.traffic_distribution = m.PREFER_CLOSE
    shown = ServiceFormBundle(spec=live, editing=True, name="web", resource_version="7")
    field = shown["traffic_distribution"]
    assert field.value() == m.PREFER_CLOSE and m.PREFER_CLOSE in choices(shown, "traffic_distribution")
    assert "deprecated" in str(dict(field.field.choices)[m.PREFER_CLOSE])
    assert "deprecated name of PreferSameZone" in str(field.help_text)
    assert shown.advanced.warned == ("traffic_distribution",) and shown.advanced.has_values
    saved = bundle(
        service_form("web", traffic_distribution=m.PREFER_CLOSE, resource_version="7"), editing=True, name="web"
    )
    assert saved.is_valid(), saved.errors
    assert saved.spec("shop").traffic_distribution == m.PREFER_CLOSE


def test_traffic_distribution_is_not_judged_for_an_external_name() -> None:
    data = service_form(
        "alias",
        type=m.EXTERNAL_NAME,
        external_name="db.example.com",
        ports=[],
        selector={},
        traffic_distribution="nonsense",
        publish_not_ready_addresses=True,
    )
    form = bundle(data, admin_features=True)
    assert form.is_valid(), form.errors
    assert form.spec("shop").traffic_distribution == "" and not form.spec("shop").publish_not_ready_addresses


def test_labels_are_rows_whose_keys_and_values_are_label_keys_and_values() -> None:
    form = bundle(service_form("web-svc", labels={"team": "shop", "app.kubernetes.io/part-of": "store"}))
    assert form.is_valid(), form.errors
    assert form.spec("shop").labels == {"team": "shop", "app.kubernetes.io/part-of": "store"}


@pytest.mark.parametrize(
    ("key", "value", "field", "message"),
    [
        ("my team", "shop", "key", "Use at most 63 letters, digits"),
        ("-team", "shop", "key", "Use at most 63 letters, digits"),
        ("Example.com/team", "shop", "key", "The prefix before '/' must be a DNS subdomain"),
        ("team", "two words", "value", "Use at most 63 letters, digits"),
        ("team", "-shop", "value", "starting and ending with a letter or digit"),
        ("team", "v" * 64, "value", "Use at most 63"),
        ("", "orphan", "key", "Give a key for this value."),
    ],
)
def test_invalid_labels_are_refused_with_a_message_on_their_row(key: str, value: str, field: str, message: str) -> None:
    form = bundle(service_form("web-svc", labels={key: value}))
    assert not form.is_valid()
    assert message in " ".join(form.labels.forms[0].errors[field])


def test_a_label_key_used_twice_is_refused() -> None:
    data = service_form("web-svc", labels={"team": "a"}) | {
        "labels-TOTAL_FORMS": "2",
        "labels-1-key": "team",
        "labels-1-value": "b",
    }
    form = bundle(data)
    assert not form.is_valid()
    assert "already used by another row" in " ".join(form.labels.forms[1].errors["key"])


def test_a_form_sent_without_label_rows_stands_for_the_labels_as_they_are() -> None:
    live = {"team": "shop", "example.com/owner": "ops"}
    form = bundle(service_form("web", resource_version="7"), editing=True, name="web", live_labels=live)
    assert form.is_valid(), form.errors
    assert form.spec("shop").labels == live
    assert [row["key"].value() for row in form.labels.forms] == ["team", "example.com/owner"]
    emptied = bundle(service_form("web", resource_version="7", labels={}), editing=True, name="web", live_labels=live)
    assert emptied.is_valid() and emptied.spec("shop").labels == {}


def test_a_form_filled_from_a_spec_shows_its_labels_and_a_new_form_has_no_label_rows() -> None:
    original = m.ServiceSpec(name="web", namespace="shop", labels={"team": "shop"}, publish_not_ready_addresses=True)
    form = ServiceFormBundle(spec=original)
    assert [(row["key"].value(), row["value"].value()) for row in form.labels.forms] == [("team", "shop")]
    assert form["publish_not_ready_addresses"].value() is True
    assert ServiceFormBundle().labels.forms == []


def test_the_api_servers_label_causes_land_on_the_labels() -> None:
    form = bundle(service_form("web-svc", labels={"team": "shop"}))
    assert form.is_valid()
    apply_api_errors(form, [{"field": "metadata.labels", "message": "bad label"}], "refused")
    assert list(form.labels.non_form_errors()) == ["bad label"]


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        (
            'spec.trafficDistribution: "PreferClose" is deprecated; use "PreferSameZone"',
            "spec.trafficDistribution: “PreferClose” is deprecated; use “PreferSameZone”.",
        ),
        (
            "annotation service.kubernetes.io/topology-aware-hints is deprecated, please use "
            "service.kubernetes.io/topology-mode instead",
            "The annotation service.kubernetes.io/topology-aware-hints is deprecated; use "
            "service.kubernetes.io/topology-mode instead.",
        ),
        (
            "spec.externalIPs is deprecated and may no longer be implemented in some clusters",
            "spec.externalIPs is deprecated and may not be implemented in some clusters.",
        ),
        ("something new the console has not heard of", "something new the console has not heard of"),
    ],
)
def test_the_api_servers_known_warnings_are_said_in_the_users_language(sent: str, shown: str) -> None:
    assert explained_warning(sent) == shown
    assert warning_notices([sent]) == [f"Warning from the API server: {shown}"]


def test_yaml_create_follows_the_forms_naming_rule_and_an_existing_short_name_stays_editable() -> None:
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: db, resourceVersion: '5'}\n"
    with pytest.raises(ValueError, match="4 to 63 characters") as refused:
        service_from_yaml(text, "shop", None)
    with pytest.raises(ValidationError) as form_refused:
        forms.validate_new_name("db")
    assert str(refused.value) == f"metadata.name: {form_refused.value.messages[0]}"  # one rule, one message
    assert service_from_yaml(text, "shop", "db")["metadata"]["name"] == "db"
