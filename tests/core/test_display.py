"""The config panel without colours (output to a file or pipe) is the same text, unlexed."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax

from nemotron_core.display import yaml_view
from nemotron_core.paths import PACKAGE_ROOT

CONFIGS = sorted((PACKAGE_ROOT / "recipes" / "nano3").glob("stage*/config/*.yaml"))
ODD = [
    "a:\tb\n\tc: 'x\ty'\n",  # tabs
    "key: \x1b[31mred\x07 bell\r\nnext: 1\rlast: 2\n",  # control codes, CRLF, CR
    "\ufefffirst: 1\n",  # a BOM
    "no_final_newline: [bold]x[/bold]",  # markup-looking text, no last newline
    "wide: 日本語テキスト " + "y" * 300 + "\n\n\n",  # wide characters, a line longer than the panel, blank lines
    "",
]


def _render(renderable: object, width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, soft_wrap=True, width=width)  # a file: no colour system, as when piped
    assert console.color_system is None
    console.print(Panel(renderable, title="t", title_align="left", border_style="dim"))
    return out.getvalue()


@pytest.mark.parametrize("text", [*(p.read_text() for p in CONFIGS), *ODD],
                         ids=[*(str(p.relative_to(PACKAGE_ROOT)) for p in CONFIGS), *map(repr, ODD)])
@pytest.mark.parametrize("width", [40, 120])
def test_the_uncoloured_yaml_view_renders_what_syntax_renders(text: str, width: int):
    plain = yaml_view(text, Console(file=io.StringIO()), "ansi_dark")
    assert not isinstance(plain, Syntax)
    assert _render(plain, width) == _render(Syntax(text, "yaml", theme="ansi_dark", background_color="default"), width)


def test_a_colour_terminal_still_gets_the_highlighted_yaml():
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor")
    assert isinstance(yaml_view("a: 1\n", console, "monokai"), Syntax)


def test_the_stage_configs_are_among_the_cases():
    assert len(CONFIGS) >= 3  # the parametrization above is not silently empty
