"""Runspec parsing: the schema, and one clear error for each way a header can be wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from nemotron_core.errors import RunspecError
from nemotron_core.runspec import parse, parse_text

ECHO = Path(__file__).resolve().parents[1] / "fixtures" / "recipes" / "echo" / "echo.py"

GOOD = """\
# /// script
# dependencies = ["torch"]
# [tool.runspec]
# schema = "1"
# name = "nano3/test"
# image = "img:1"
# [tool.runspec.run]
# launch = "torchrun"
# [tool.runspec.config]
# dir = "./config"
# default = "tiny"
# [tool.runspec.resources]
# nodes = 2
# gpus_per_node = 8
# [tool.runspec.env]
# A = "1"
# ///
print("hi")
"""


def write_recipe(tmp_path: Path, header: str, configs=("default", "tiny")) -> Path:
    (tmp_path / "config").mkdir(exist_ok=True)
    for name in configs:
        (tmp_path / "config" / f"{name}.yaml").write_text("x: 1\n")
    script = tmp_path / "train.py"
    script.write_text(header)
    return script


def test_parses_a_full_header(tmp_path):
    spec = parse(write_recipe(tmp_path, GOOD))
    assert spec.name == "nano3/test"
    assert spec.image == "img:1"
    assert spec.run.launch == "torchrun"
    assert spec.config.dir == (tmp_path / "config").resolve()
    assert spec.config.default == "tiny"
    assert spec.config.choices() == ["default", "tiny"]
    assert (spec.resources.nodes, spec.resources.gpus_per_node) == (2, 8)
    assert dict(spec.env) == {"A": "1"}
    assert spec.dependencies == ("torch",)
    assert len(spec.digest) == 64


def test_runspec_is_frozen(tmp_path):
    spec = parse(write_recipe(tmp_path, GOOD))
    with pytest.raises(Exception):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.env["B"] = "2"  # type: ignore[index]


def test_digest_changes_with_the_header(tmp_path):
    a = parse(write_recipe(tmp_path, GOOD)).digest
    b = parse(write_recipe(tmp_path, GOOD.replace("nodes = 2", "nodes = 3"))).digest
    assert a != b


def test_the_echo_fixture_recipe_parses():
    spec = parse(ECHO)
    assert spec.run.launch == "direct" and "{script}" in spec.run.cmd


@pytest.mark.parametrize("old,new,expected", [
    ('launch = "torchrun"', 'launch = "torchrn"', "'tool.runspec.run.launch' = 'torchrn' is not one of direct | python | ray | torchrun (did you mean 'torchrun'?)"),
    ('name = "nano3/test"', 'nmae = "nano3/test"', "unknown key 'tool.runspec.nmae' (did you mean 'name'?)"),
    ("nodes = 2", 'nodes = "two"', "'tool.runspec.resources.nodes' = 'two' must be an integer >= 1"),
    ("nodes = 2", "nodes = 0", "'tool.runspec.resources.nodes' = 0 must be an integer >= 1"),
    ("gpus_per_node = 8", "gpus_per_node = true", "'tool.runspec.resources.gpus_per_node' = True must be an integer >= 0"),
    ('default = "tiny"', 'default = "huge"', "'tool.runspec.config.default' = 'huge'"),
    ('dir = "./config"', 'dir = "./nope"', "'tool.runspec.config.dir' = './nope': no such directory"),
    ('name = "nano3/test"', 'name = ""', "'tool.runspec.name' = '' must be a non-empty string"),
    ('schema = "1"', 'schema = "2"', "'tool.runspec.schema' = '2' is not one of 1"),
    ('A = "1"', "A = [1]", "'tool.runspec.env.A' = [1] must be a string"),
    ('# [tool.runspec.config]\n', "# config = 3\n# [tool.runspec.config]\n", "runspec"),
])
def test_each_bad_value_names_script_key_and_allowed_values(tmp_path, old, new, expected):
    script = write_recipe(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(RunspecError) as err:
        parse(script)
    msg = str(err.value)
    assert expected in msg
    assert str(script) in msg
    assert "\n" not in msg


def test_missing_name_is_an_error(tmp_path):
    with pytest.raises(RunspecError, match="missing required key 'tool.runspec.name'"):
        parse(write_recipe(tmp_path, GOOD.replace('# name = "nano3/test"\n', "")))


def test_direct_launch_without_cmd_runs_the_default_cmd(tmp_path):
    spec = parse(write_recipe(tmp_path, GOOD.replace("torchrun", "direct")))
    assert spec.run.cmd is None and spec.run.command_template == "python {script} --config {config}"


def test_no_block(tmp_path):
    with pytest.raises(RunspecError, match="no '# /// script' block"):
        parse(write_recipe(tmp_path, "print(1)\n"))


def test_block_without_runspec_table(tmp_path):
    with pytest.raises(RunspecError, match=r"no \[tool.runspec\] table"):
        parse(write_recipe(tmp_path, '# /// script\n# dependencies = []\n# ///\n'))


def test_two_script_blocks(tmp_path):
    with pytest.raises(RunspecError, match=r"2 '# /// script' blocks \(lines 1, 19\)"):
        parse(write_recipe(tmp_path, GOOD + GOOD))


def test_unterminated_block(tmp_path):
    text = GOOD.replace("# ///\nprint", "print")
    with pytest.raises(RunspecError, match="unterminated '# /// script' block"):
        parse(write_recipe(tmp_path, text))


def test_unterminated_at_end_of_file(tmp_path):
    with pytest.raises(RunspecError, match="add a closing '# ///' line"):
        parse(write_recipe(tmp_path, "# /// script\n# [tool.runspec]\n"))


def test_bad_toml(tmp_path):
    with pytest.raises(RunspecError, match="invalid TOML"):
        parse(write_recipe(tmp_path, "# /// script\n# [tool.runspec\n# ///\n"))


def test_missing_script():
    with pytest.raises(RunspecError, match="recipe script not found"):
        parse("/nonexistent/train.py")


# Anything at all in the header: the parser answers with a Runspec or a RunspecError.
toml_line = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(["[tool.runspec]", "[tool.runspec.run]", "[tool.runspec.config]", "[tool.runspec.resources]",
                     'name = "x"', 'launch = "ray"', "nodes = -1", 'dir = "./config"', "gpus_per_node = 1.5",
                     "[tool]", "runspec = 3", "# ///", "# /// script", 'default = "tiny"', 'cmd = "python {script}"']),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(toml_line, max_size=12), st.booleans())
def test_fuzzed_headers_raise_only_runspec_errors(tmp_path_factory, lines, close):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "config").mkdir()
    (folder / "config" / "default.yaml").write_text("x: 1\n")
    body = "\n".join(f"# {line}" for line in lines)
    text = "# /// script\n" + body + ("\n# ///\n" if close else "\n")
    try:
        parse_text(text, folder / "train.py")
    except RunspecError as e:
        assert str(e) and "\n" not in str(e)
