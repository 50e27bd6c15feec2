"""Content keys change exactly when what a stage computes changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron_core.content_key import content_key, recipe_source_digest


@pytest.fixture
def family(tmp_path) -> Path:
    root = tmp_path / "recipes" / "nano3"
    for d in ("stage0_pretrain", "stage1_sft", "common", "training", "rl"):
        (root / d).mkdir(parents=True)
        (root / d / "__init__.py").write_text("")
    (tmp_path / "recipes" / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "stage0_pretrain" / "train.py").write_text("from recipes.nano3.training import loop\nprint('pretrain')\n")
    (root / "stage1_sft" / "train.py").write_text("import recipes.nano3.training.loop\nprint('sft')\n")
    (root / "common" / "world.py").write_text("X = 1\n")
    (root / "training" / "loop.py").write_text("from ..common.world import X\nY = 1\n")
    (root / "rl" / "grpo.py").write_text("Z = 1\n")
    return root


def key(**over):
    base = dict(recipe="nano3/sft", source_digest="s", train_config={"lr": 1.0, "output_dir": "/a"},
                image="img", inputs={"nano3-sft-data:v1": "d1"})
    return content_key(**{**base, **over})


def test_source_digest_tracks_what_the_script_imports(family):
    pretrain, sft = family / "stage0_pretrain" / "train.py", family / "stage1_sft" / "train.py"
    before = recipe_source_digest(pretrain)
    sft.write_text("print('sft v2')\n")  # another stage's script: no effect
    (family / "rl" / "grpo.py").write_text("Z = 2\n")  # code pretraining does not import: no effect
    assert recipe_source_digest(pretrain) == before
    (family / "common" / "world.py").write_text("X = 2\n")  # imported through training.loop (relative)
    after_common = recipe_source_digest(pretrain)
    assert after_common != before
    (family / "training" / "loop.py").write_text("from ..common.world import X\nY = 2\n")
    after_shared = recipe_source_digest(pretrain)
    assert after_shared != after_common
    pretrain.write_text("print('pretrain v2')\n")
    assert recipe_source_digest(pretrain) != after_shared


def test_content_key_ignores_where_the_output_goes():
    assert key() == key(train_config={"lr": 1.0, "output_dir": "/elsewhere", "resume": "auto"})


@pytest.mark.parametrize("change", [
    {"train_config": {"lr": 2.0}},
    {"image": "img:2"},
    {"inputs": {"nano3-sft-data:v2": "d2"}},
    {"inputs": {"nano3-sft-data:v1": "d1-changed"}},
    {"source_digest": "s2"},
    {"recipe": "nano3/rl"},
])
def test_content_key_changes_with_what_is_computed(change):
    assert key(**change) != key()


def test_input_order_does_not_matter():
    a = key(inputs={"x:v1": "1", "y:v2": "2"})
    b = key(inputs={"y:v2": "2", "x:v1": "1"})
    assert a == b


def _import_statements(tree) -> list[str]:
    import ast

    return sorted(ast.dump(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))


TRICKY = '''\
"""A docstring that mentions
from recipes.nano3 import world
import recipes.nano3.rl  # not a statement either
"""
import os, sys as system; import recipes.nano3.common  # comment: import recipes.nano3.rl
from . import (loop,  # the loop
               world as w)
from ..common \\
    import world
x = rb'import recipes.a' + f"{'from recipes import b'}" + 'don\\'t import recipes.c' + r"\\\\"
def f():
    try:
        raise ValueError("x") from None
    except ValueError as e:
        raise RuntimeError() from e
    if TYPE_CHECKING: from recipes.nano3.training import loop
    yield from (y for y in [1])
    import importlib, json
from recipes.nano3.x import *
'''


@pytest.mark.parametrize("source", [TRICKY, "from x import (a,  # (b)\n  c)\n", "import a; from b import c\n"])
def test_the_import_scan_finds_what_ast_finds(source):
    import ast

    from nemotron_core.content_key import _import_tree

    assert _import_statements(_import_tree(source)) == _import_statements(ast.parse(source))


def test_the_import_scan_agrees_with_ast_on_every_file_of_this_checkout():
    """The fast scan (content_key._STATEMENTS) reads the same imports as a full parse, file by file."""
    import ast

    from nemotron_core.content_key import _import_tree
    from nemotron_core.paths import PACKAGE_ROOT

    skip = {".venv", ".state", ".git", "node_modules"}
    files = [p for p in PACKAGE_ROOT.rglob("*.py") if not skip & set(p.relative_to(PACKAGE_ROOT).parts)]
    assert len(files) > 100
    for path in files:
        source = path.read_text(encoding="utf-8")
        try:
            full = ast.parse(source)
        except SyntaxError:
            continue
        assert _import_statements(_import_tree(source)) == _import_statements(full), path
