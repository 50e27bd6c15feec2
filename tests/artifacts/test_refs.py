"""Ref parsing and the ${art:} lookup: valid forms, and only ArtifactError for anything else."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nemotron_core.artifacts import config_lookup, open_registry, parse_ref
from nemotron_core.artifacts.refs import Ref, check_alias
from nemotron_core.errors import ArtifactError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nano3-sft-model", Ref("nano3-sft-model", alias="latest")),
        ("nano3-sft-model:v3", Ref("nano3-sft-model", version=3)),
        ("nano3-sft-model:best", Ref("nano3-sft-model", alias="best")),
        ("nano3-sft-model:latest", Ref("nano3-sft-model", alias="latest")),
        ("  nano3-eval:v12 ", Ref("nano3-eval", version=12)),
        ("a.b_c-1:prod-2", Ref("a.b_c-1", alias="prod-2")),
    ],
)
def test_valid_refs(text, expected):
    assert parse_ref(text) == expected
    assert parse_ref(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "missing the name"),
        (":v1", "missing the name"),
        ("nano3 sft", "bad name"),
        ("-x", "bad name"),
        ("x:", "bad version/alias"),
        ("x:v01", "no leading zeros"),
        ("x:v1:v2", "bad version/alias"),
        ("x:a/b", "bad version/alias"),
        ("x:" + "a" * 200, "bad version/alias"),
        (None, "expected a string"),
        (3, "expected a string"),
    ],
)
def test_invalid_refs_name_the_problem(text, message):
    with pytest.raises(ArtifactError, match=message):
        parse_ref(text)


def test_alias_rules():
    assert check_alias("best") == "best"
    for bad, msg in (("v3", "looks like a version"), ("latest", "derived"), ("a b", "invalid alias"), ("", "invalid")):
        with pytest.raises(ArtifactError, match=msg):
            check_alias(bad)


@given(st.one_of(st.text(max_size=80), st.binary(max_size=20), st.integers(), st.none(),
                 st.lists(st.text(max_size=5), max_size=3)))
@settings(max_examples=400, deadline=None)
def test_parse_ref_fuzz_only_artifact_error(value):
    try:
        r = parse_ref(value)
    except ArtifactError as exc:
        assert "\n" not in str(exc), "one-line messages"
        return
    assert isinstance(r, Ref)
    assert parse_ref(str(r)) == r


_token = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@given(name=_token, selector=st.one_of(st.none(), _token, st.integers(0, 10**12).map(lambda n: f"v{n}")))
@settings(max_examples=300, deadline=None)
def test_structured_refs_round_trip(name, selector):
    text = name if selector is None else f"{name}:{selector}"
    try:
        r = parse_ref(text)
    except ArtifactError:
        assert selector is not None and selector.startswith("v") and selector[1:].isdigit() \
            and len(selector) > 10, text  # only over-long version numbers are refused
        return
    assert r.name == name
    assert parse_ref(str(r)) == r


@pytest.fixture(scope="module")
def small_registry():
    import uuid

    reg = open_registry({"root": f"memory://refs-{uuid.uuid4().hex}"})
    from pathlib import Path
    import os

    src = Path(os.environ["NEMOTRON_STATE_DIR"]) / "artifact-tests" / f"refs-src-{uuid.uuid4().hex[:6]}"
    src.mkdir(parents=True)
    (src / "f").write_text("x")
    reg.publish("nano3-sft-data", src, metadata={"a": {"b": 1}}, aliases=("latest", "best"))
    yield reg
    import shutil

    shutil.rmtree(src, ignore_errors=True)


@given(ref=st.one_of(st.text(max_size=40), st.sampled_from(["nano3-sft-data", "nano3-sft-data:v1",
                                                              "nano3-sft-data:best", "nano3-sft-data:v2"])),
       field=st.one_of(st.text(max_size=20), st.sampled_from(["path", "metadata.a.b", "metadata.a.c", "version"])))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_lookup_fuzz_only_artifact_error(small_registry, ref, field):
    lookup = config_lookup(small_registry)
    try:
        value, pinned = lookup(ref, field)
    except ArtifactError as exc:
        assert "\n" not in str(exc)
        return
    assert pinned == "nano3-sft-data:v1"
    assert value is not None
