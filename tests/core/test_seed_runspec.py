"""Runspec headers in the published spec's forms (schema "1", as seed scripts write them).

The fixtures are written here from the spec's documented keys and defaults: launch defaults to
torchrun, cmd to `python {script} --config {config}`, gpus_per_node to 8 (or the literal "gpu"),
config.format is omegaconf | yaml | json, and `launch = "python"` means plain python (direct).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron_core.errors import RunspecError
from nemotron_core.launch import plan_job
from nemotron_core.runspec import DEFAULT_CMD, parse


def recipe(tmp_path: Path, body: str, configs: dict[str, str] | None = None, config_dir: str = "config") -> Path:
    """A script whose header is `body` (TOML lines), with the given config files beside it."""
    folder = tmp_path / config_dir
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (configs or {"default.yaml": "x: 1\n"}).items():
        (folder / name).write_text(text)
    lines = ["# /// script", *(f"# {line}" if line else "#" for line in body.strip().splitlines()), "# ///"]
    script = tmp_path / "step.py"
    script.write_text("\n".join(lines) + "\nprint('ran')\n")
    return script


def test_a_header_with_only_a_name_takes_the_spec_defaults(tmp_path):
    spec = parse(recipe(tmp_path, '[tool.runspec]\nname = "demo/minimal"'))
    assert spec.run.launch == "torchrun" and spec.run.cmd is None
    assert (spec.resources.nodes, spec.resources.gpus_per_node) == (1, 8)
    assert spec.config.format == "omegaconf" and spec.config.default == "default"
    assert spec.config.default_path == (tmp_path / "config" / "default.yaml").resolve()


def test_direct_without_cmd_runs_python_script_config(tmp_path):
    spec = parse(recipe(tmp_path, '[tool.runspec]\nname = "demo/direct"\n[tool.runspec.run]\nlaunch = "direct"'))
    assert spec.run.launch == "direct" and spec.run.command_template == DEFAULT_CMD
    plan = plan_job(spec, None, tmp_path / "train.yaml")
    assert plan.command[1:] == [str(spec.script_path), "--config", str(tmp_path / "train.yaml")]
    assert Path(plan.command[0]).name.startswith("python")


@pytest.mark.parametrize("cmd", [None, 'cmd = "python {script} --config {config} --fast"'])
def test_launch_python_is_plain_python(tmp_path, cmd):
    body = '[tool.runspec]\nname = "demo/py"\n[tool.runspec.run]\nlaunch = "python"\n' + (cmd or "")
    spec = parse(recipe(tmp_path, body))
    assert spec.run.launch == "direct"
    plan = plan_job(spec, None, tmp_path / "t.yaml")
    assert plan.launcher == "direct" and "torchrun" not in plan.command_line
    assert plan.command[-1] == ("--fast" if cmd else str(tmp_path / "t.yaml"))


def test_gpus_per_node_takes_the_literal_gpu(tmp_path):
    spec = parse(recipe(tmp_path, '[tool.runspec]\nname = "demo/g"\n[tool.runspec.resources]\nnodes = 2\n'
                                  'gpus_per_node = "gpu"'))
    assert (spec.resources.nodes, spec.resources.gpus_per_node) == (2, 8)


@pytest.mark.parametrize("value,expected", [
    ('"gpus"', "'tool.runspec.resources.gpus_per_node' = 'gpus' must be an integer >= 0 or the string 'gpu'"),
    ("-1", "'tool.runspec.resources.gpus_per_node' = -1 must be an integer >= 0 or the string 'gpu'"),
])
def test_other_gpu_words_are_refused(tmp_path, value, expected):
    script = recipe(tmp_path, f'[tool.runspec]\nname = "demo/g"\n[tool.runspec.resources]\ngpus_per_node = {value}')
    with pytest.raises(RunspecError) as err:
        parse(script)
    assert expected in str(err.value) and str(script) in str(err.value)


def test_json_configs(tmp_path):
    script = recipe(tmp_path, '[tool.runspec]\nname = "demo/j"\n[tool.runspec.config]\nformat = "json"\n'
                              'default = "base"', configs={"base.json": '{"x": 1}', "big.json": "{}", "other.yaml": "y: 2\n"})
    spec = parse(script)
    assert spec.config.format == "json"
    assert spec.config.default_path.name == "base.json"
    assert spec.config.choices() == ["base", "big"]


@pytest.mark.parametrize("fmt", ["yaml", "omegaconf"])
def test_yml_configs_are_found_like_yaml(tmp_path, fmt):
    script = recipe(tmp_path, f'[tool.runspec]\nname = "demo/y"\n[tool.runspec.config]\nformat = "{fmt}"',
                    configs={"default.yml": "x: 1\n", "tiny.yaml": "x: 2\n"})
    spec = parse(script)
    assert spec.config.default_path.name == "default.yml"
    assert spec.config.choices() == ["default", "tiny"]


def test_a_full_seed_style_header(tmp_path):
    body = """
dependencies = ["nemo-rl"]
[tool.runspec]
schema = "1"
docs = "https://example.invalid/docs/rl"
name = "demo/rl"
image = "nvcr.io/nvidia/nemo-rl:v0.4.0"
setup = "Needs NeMo-RL in the image."
[tool.runspec.run]
launch = "ray"
workdir = "/opt/nemo-rl"
[tool.runspec.config]
dir = "./configs/rl"
default = "grpo"
format = "yaml"
[tool.runspec.resources]
nodes = 4
gpus_per_node = 8
[tool.runspec.env]
NCCL_DEBUG = "WARN"
RAY_DEDUP_LOGS = 0
"""
    spec = parse(recipe(tmp_path, body, configs={"grpo.yaml": "a: 1\n"}, config_dir="configs/rl"))
    assert (spec.run.launch, spec.run.workdir, spec.run.command_template) == ("ray", "/opt/nemo-rl", DEFAULT_CMD)
    assert spec.config.default_path == (tmp_path / "configs/rl/grpo.yaml").resolve()
    assert dict(spec.env) == {"NCCL_DEBUG": "WARN", "RAY_DEDUP_LOGS": "0"}
    assert spec.docs == "https://example.invalid/docs/rl" and spec.dependencies == ("nemo-rl",)


@pytest.mark.parametrize("line,expected", [
    ('lanch = "python"', "unknown key 'tool.runspec.run.lanch' (did you mean 'launch'?)"),
    ('launch = "pyton"', "'tool.runspec.run.launch' = 'pyton' is not one of direct | python | ray | torchrun "
                         "(did you mean 'python'?)"),
    ("launch = 3", "'tool.runspec.run.launch' = 3 must be a string"),
    ('cmd = ""', "'tool.runspec.run.cmd' = '' is empty; remove it to run 'python {script} --config {config}'"),
    ('workdr = "/opt"', "unknown key 'tool.runspec.run.workdr' (did you mean 'workdir'?)"),
])
def test_run_table_errors_stay_strict(tmp_path, line, expected):
    script = recipe(tmp_path, f'[tool.runspec]\nname = "demo/e"\n[tool.runspec.run]\n{line}')
    with pytest.raises(RunspecError) as err:
        parse(script)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_config_format_typo_names_the_formats(tmp_path):
    script = recipe(tmp_path, '[tool.runspec]\nname = "demo/f"\n[tool.runspec.config]\nformat = "jsn"')
    with pytest.raises(RunspecError, match=r"'tool.runspec.config.format' = 'jsn' is not one of json \| omegaconf \| "
                                           r"yaml \(did you mean 'json'\?\)"):
        parse(script)


def test_the_project_recipes_keep_their_meaning():
    """Every nano3 header names its launch and GPUs, so the spec's new defaults change none of them."""
    root = Path(__file__).resolve().parents[2] / "recipes" / "nano3"
    found = {}
    for script in sorted(root.glob("*/*.py")):
        if "# /// script" not in script.read_text():
            continue
        spec = parse(script)
        found[spec.name] = (spec.run.launch, spec.run.cmd is None, spec.resources.gpus_per_node)
    assert found == {
        "nano3/data/prep/pretrain": ("ray", False, 0), "nano3/data/prep/sft": ("ray", False, 0),
        "nano3/data/prep/rl": ("ray", False, 0), "nano3/pretrain": ("torchrun", True, 8),
        "nano3/sft": ("torchrun", True, 8), "nano3/rl": ("ray", False, 8), "nano3/eval": ("direct", False, 1),
    }


def test_a_step_without_config_table_or_folder_parses(tmp_path):
    """A build step in the spec's form: shebang, [run] and [resources] only, no config folder."""
    script = tmp_path / "build.py"
    script.write_text('#!/usr/bin/env python3\n# /// script\n# [tool.runspec]\n# schema = "1"\n# name = "demo/build"\n'
                      '#\n# [tool.runspec.run]\n# launch = "direct"\n#\n# [tool.runspec.resources]\n# nodes = 1\n'
                      '# gpus_per_node = 0\n# ///\nprint("built")\n')
    spec = parse(script)
    assert spec.run.command_template == DEFAULT_CMD and spec.config.choices() == []
    assert not spec.config.default_path.exists()


def test_a_declared_config_folder_must_exist(tmp_path):
    script = tmp_path / "step.py"
    script.write_text('# /// script\n# [tool.runspec]\n# name = "demo/x"\n# [tool.runspec.config]\n# default = "a"\n# ///\n')
    with pytest.raises(RunspecError, match="'tool.runspec.config.dir' = './config': no such directory"):
        parse(script)


def test_multiline_setup_and_shebang(tmp_path):
    body = '[tool.runspec]\nname = "demo/m"\nsetup = """\nLine one.\nLine two.\n"""'
    script = recipe(tmp_path, body)
    script.write_text("#!/usr/bin/env python3\n" + script.read_text())
    assert parse(script).setup == "Line one.\nLine two.\n"
