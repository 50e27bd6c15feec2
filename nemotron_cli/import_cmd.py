"""`nemotron nano3 data import pretrain|sft|rl SOURCE` and `nemotron nano3 model import ...`.

Register existing data (local folder or s3:// URI) or a Hugging Face safetensors model
folder as the next version of nano3-<stage>-data / nano3-<stage>-model, after checking
the expected layout (nemotron_core.artifacts.layouts). The layout summary, the source
and `producer = "import"` go into the version's metadata. With `--dry-run` the same checks
run (source listed, layout read) and the plan is printed; nothing is copied or registered.
"""

from __future__ import annotations

import typer

from nemotron_cli.dry_run import dry_run_of, honours_dry_run

data_import_app = typer.Typer(
    name="import",
    help="Register an existing dataset (folder or s3:// URI) as a nano3-<stage>-data artifact.",
    no_args_is_help=True,
)
model_import_app = typer.Typer(
    name="import",
    help="Register a Hugging Face safetensors model folder as a nano3-<stage>-model artifact.",
    no_args_is_help=True,
)

ROOT_HELP = "Artifact root (folder, file://, s3://); default: env.toml [artifacts], else <state>/artifacts."
LAYOUT = {
    ("data", "pretrain"): "PREFIX.bin + PREFIX.idx pairs and blend.json",
    ("data", "sft"): "Parquet splits (train required; validation/test optional)",
    ("data", "rl"): "JSONL files + manifest.json",
    ("model", "pretrain"): "HF safetensors folder (config.json + model.safetensors or shards + index)",
    ("model", "sft"): "HF safetensors folder (config.json + model.safetensors or shards + index)",
    ("model", "rl"): "HF safetensors folder (config.json + model.safetensors or shards + index)",
}


def import_source(kind: str, stage: str, source: str, *, root: str | None = None, aliases: list[str] | None = None,
                  move: bool = False, cfg: dict | None = None):
    """Check the layout of `source` and publish it; returns the ArtifactVersion."""
    name, reg, tree, summary = _checked_source(kind, stage, source, root, cfg)
    metadata = {"producer": "import", "source": source, "layout": summary}
    return reg.publish(name, source, metadata=metadata, aliases=["latest", *(aliases or [])], move=move)


def import_plan(kind: str, stage: str, source: str, *, root: str | None = None, aliases: list[str] | None = None,
                move: bool = False, cfg: dict | None = None) -> list[str]:
    """What `import_source` would do, from the same checks and reads only (--dry-run)."""
    from nemotron_cli.artifacts_cmd import _human

    name, reg, tree, summary = _checked_source(kind, stage, source, root, cfg)
    wanted = reg.check_publish_aliases(["latest", *(aliases or [])])  # the same alias checks as publish
    live = reg.live_versions(name)
    after = f"after {name}:v{live[-1]}" if live else "its first version"
    size = sum(n for _, n in tree.files)
    how = "move (rename) it into" if move else "copy it into"
    return [f"would import {source} as the next version of {name} ({after}): "
            f"{len(tree.files)} file(s), {_human(size)}, layout {summary.get('kind', '?')}",
            f"  would {how} {reg.describe()} and point {', '.join(['latest', *wanted])} at it",
            "dry run: nothing copied, moved or registered"]


def _checked_source(kind: str, stage: str, source: str, root: str | None, cfg: dict | None):
    from nemotron_core.artifacts.layouts import artifact_name, check_layout
    from nemotron_core.artifacts.transfer import open_source
    from nemotron_cli.artifacts_cmd import _registry_from_cli

    name = artifact_name(kind, stage)
    reg = _registry_from_cli(root, cfg)
    options = reg.source_options(source) if hasattr(reg, "source_options") else None
    tree = open_source(source, options)
    return name, reg, tree, check_layout(kind, stage, tree)


def _command(app: typer.Typer, kind: str, stage: str) -> None:
    @honours_dry_run
    def command(
        ctx: typer.Context,
        source: str = typer.Argument(..., help="Local folder or s3:// URI."),
        alias: list[str] = typer.Option([], "--alias", help="Also point this alias at the new version (repeatable)."),
        move: bool = typer.Option(False, "--move", help="Move the folder into a local store instead of copying."),
        root: str = typer.Option(None, "--root", help=ROOT_HELP),
    ) -> None:
        if dry_run_of(ctx):
            for line in import_plan(kind, stage, source, root=root, aliases=alias, move=move):
                typer.echo(line)
            return
        v = import_source(kind, stage, source, root=root, aliases=alias, move=move)
        from nemotron_cli.artifacts_cmd import _human

        typer.echo(f"imported {source} as {v.ref}: {len(v.files)} file(s), {_human(v.size)}, {v.digest[:19]}")
        typer.echo(f"  path {v.path}")

    command.__doc__ = f"Import {LAYOUT[(kind, stage)]} as nano3-{stage}-{'data' if kind == 'data' else 'model'}."
    app.command(stage, help=command.__doc__)(command)


for _stage in ("pretrain", "sft", "rl"):
    _command(data_import_app, "data", _stage)
    _command(model_import_app, "model", _stage)
