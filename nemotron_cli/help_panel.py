"""What a recipe command's `--help` shows beyond its options (read only when help is rendered).

- the env.toml profiles found, each with its executor and partition (an env.toml that does not
  load shows its one-line error instead: help never fails);
- the config's top-level options (keys of the default config, with their value when it is short);
- examples of the command line.
Nothing here is imported by `nemotron --help`: recipe_typer.py imports it inside format_help.
"""

from __future__ import annotations

from pathlib import Path

from nemotron_core.errors import NemotronError


def profile_rows() -> tuple[str, list[tuple[str, str]]]:
    """(where they come from, [(name, "executor[, partition ...]")]) for every profile (and `local`)."""
    from nemotron_core.profiles import load_env

    try:
        env = load_env()
        rows = []
        for name in env.names():
            p = env.profile(name)
            where = [p.executor]
            where += [f"{k.replace('_partition', '')}: {p.get(k)}" for k in ("partition", "run_partition",
                                                                             "batch_partition") if p.get(k)]
            rows.append((name, ", ".join(where)))
        return (str(env.path) if env.path else "no env.toml found: the built-in local only"), rows
    except NemotronError as e:
        return "env.toml", [("[red]error[/]", str(e))]


def config_options(default_config: Path, limit: int = 24) -> str:
    """`key=value` for the default config's top-level scalars and `key.*` for its sections."""
    from nemotron_core.config.yaml_bounded import load_bounded

    try:
        data = load_bounded(default_config.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - help shows what it can; the run reports a bad config properly
        return "-"
    if not isinstance(data, dict):
        return "-"
    words = []
    for key, value in data.items():
        if isinstance(value, dict):
            words.append(f"{key}.*")
        elif isinstance(value, (str, int, float, bool)) and len(str(value)) <= 40:
            words.append(f"{key}={value}")
        else:
            words.append(str(key))
    more = f" … (+{len(words) - limit})" if len(words) > limit else ""
    return "  ".join(words[:limit]) + more


def examples(command: str, configs: list[str]) -> list[str]:
    config = "tiny" if "tiny" in configs else (configs[0] if configs else "default")
    lines = [(f"-c {config} -d", "the resolved config and the plan, nothing run"),
             (f"-c {config}", "run here and wait"),
             (f"-c {config} -r PROFILE key=value", "on a profile, attached, with an override"),
             ("-b PROFILE", "submit and return"),
             ("-b PROFILE --stage", "the job's files in place, how to run it printed; nothing submitted")]
    width = max(len(args) for args, _ in lines)
    return [f"nemotron {command} {args.ljust(width)}  [dim]# {what}[/]" for args, what in lines]
