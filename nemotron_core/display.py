"""Rich displays for the CLI: the compiled config and the launch plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nemotron_core.launch import Plan
from nemotron_core.profile_sections import cli_theme
from nemotron_core.profiles import load_env
from nemotron_core.secrets import is_secret_name, redact


def _console() -> Any:
    from rich.console import Console  # lazy: rich.console is a heavy import

    return Console(soft_wrap=True)


def _theme() -> str:
    """env.toml's `[cli] theme` when it names a style, else rich's ANSI theme (the terminal's colours)."""
    env = load_env()
    return cli_theme(env.section("cli"), str(env.path or "env.toml")) or "ansi_dark"


def yaml_view(text: str, console: Any, theme: str) -> Any:
    """The YAML as rich's Syntax highlights it; as the same characters, unlexed, when `console` shows no styles.

    A console without a colour system (output to a file or a pipe) writes no style at all, so
    highlighting changes no byte there, and it costs a dry run ~20 ms (rich.syntax and pygments
    imported, the YAML lexer's regexes compiled). The plain Text gets what Syntax does to the code
    before lexing (tabs to 4 spaces, a BOM dropped, `\\r\\n`/`\\r` to `\\n` as pygments reads them, a last
    newline only if the code had one); tests/core/test_display.py holds the two renderings equal.
    """
    if console.color_system is None:
        from rich.text import Text  # lazy: rich.text is a heavy import

        ends_on_nl = text.endswith("\n")
        code = (text if ends_on_nl else text + "\n").expandtabs(4)  # Syntax._process_code
        code = code.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")  # the lexer's input
        plain = Text(code, justify="default", tab_size=4, no_wrap=True)  # strips control codes, as the lexer's tokens
        if not ends_on_nl:
            plain.remove_suffix("\n")
        return plain
    from rich.syntax import Syntax  # lazy: rich.syntax is a heavy import

    return Syntax(text, "yaml", theme=theme, background_color="default")


def display_job_config(job_config: Any, *, title: str = "train config (resolved)") -> None:
    from omegaconf import OmegaConf  # lazy: omegaconf is a heavy import
    from rich.panel import Panel  # lazy: rich.panel is a heavy import

    data = OmegaConf.to_container(job_config, resolve=False)
    assert isinstance(data, dict)  # a job config is a mapping
    data.pop("run", None)
    text = OmegaConf.to_yaml(OmegaConf.create(redact(data)))
    console = _console()
    console.print(Panel(yaml_view(text, console, _theme()), title=title, title_align="left", border_style="dim"))


def display_plan(plan: Plan, *, job_dir: Path, mode: str, profile_name: str, artifacts: dict, sbatch: str | None = None,
                 dry_run: bool = False) -> None:
    from rich.panel import Panel  # lazy: rich.panel is a heavy import
    from rich.table import Table  # lazy: rich.table is a heavy import

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold cyan")
    t.add_column(overflow="fold")
    t.add_row("recipe", plan.recipe)
    t.add_row("mode", f"{mode} (profile {profile_name})")
    t.add_row("executor", plan.executor)
    t.add_row("launcher", plan.launcher)
    t.add_row("resources", f"{plan.nodes} node(s) × {plan.gpus_per_node} GPU(s); {plan.nproc_per_node} process(es)/node")
    t.add_row("job.yaml", str(job_dir / "job.yaml") + ("  (not written: dry run)" if dry_run else ""))
    t.add_row("train.yaml", str(job_dir / "train.yaml"))
    t.add_row("command", plan.command_line)
    for k, v in plan.env.items():
        t.add_row("env", f"{k}={'***' if is_secret_name(k) else v}")
    for ref, pinned in artifacts.items():
        t.add_row("artifact", f"{ref} → {pinned}")
    for note in plan.notes:
        t.add_row("note", note)
    console = _console()
    console.print(Panel(t, title="plan" + (" (dry run)" if dry_run else ""), title_align="left", border_style="dim"))
    if sbatch:
        # Verbatim (no markup, no box, no wrapping): the text must be copy-pasteable, and
        # nemo-run's Ray template holds `[/...]` sequences that rich would read as tags.
        title = "sbatch script" if plan.executor == "slurm" else f"{plan.executor} request (not sent)"
        console.rule(title, align="left", style="dim")
        console.print(sbatch, markup=False, highlight=False, soft_wrap=True)
