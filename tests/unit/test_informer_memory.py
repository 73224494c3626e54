"""What an informer keeps of each object: equal to what the API server sent (slimmed), with its keys and short
strings shared between objects."""

from __future__ import annotations

import json

from kube.informer import INTERNED_LENGTH, _compact


def test_compacting_keeps_the_object_and_shares_its_short_strings() -> None:
    text = json.dumps({"spec": {"type": "ClusterIP", "ports": [{"protocol": "TCP", "port": 80}]}, "n": None})
    first, second = _compact(json.loads(text)), _compact(json.loads(text))
    assert first == second == json.loads(text)
    assert first["spec"]["type"] is second["spec"]["type"]
    assert first["spec"]["ports"][0]["protocol"] is second["spec"]["ports"][0]["protocol"]
    assert next(iter(first)) is next(iter(second))  # the keys too


def test_long_strings_are_left_alone() -> None:
    long = "x" * (INTERNED_LENGTH + 1)
    first, second = _compact(json.loads(json.dumps([long]))), _compact(json.loads(json.dumps([long])))
    assert first == second == [long] and first[0] is not second[0]
