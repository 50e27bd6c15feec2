"""`nemotron artifacts list|show|lineage|alias|verify|gc`.

Which registry: `--root URI` (a folder, file://, s3://), else the `[artifacts]` table of
env.toml (nemotron_core.profiles), else the local default `<state>/artifacts`.
Heavy modules (fsspec, s3fs, wandb) load inside the commands, so `nemotron --help`
stays instant. User errors raise ArtifactError (the main app prints `error: ...`, exit 2).
"""

from __future__ import annotations

import json
from typing import Any

import typer

from nemotron_core.errors import ArtifactError

app = typer.Typer(
    name="artifacts",
    help="List, inspect, alias, verify and garbage-collect artifact versions.",
    no_args_is_help=True,
)

ROOT_HELP = "Artifact root (folder, file://, s3://); default: env.toml [artifacts], else <state>/artifacts."


def _env_artifacts_cfg() -> dict[str, Any]:
    """The `[artifacts]` table of env.toml ({} when there is no env.toml)."""
    try:
        from nemotron_core.profiles import load_env
    except ImportError:  # pragma: no cover - profiles lands separately
        return {}
    # TODO(lead): if [artifacts] becomes per-profile, pass the active --run/--batch profile here.
    return dict(load_env().section("artifacts") or {})


def _registry_from_cli(root: str | None, cfg: dict[str, Any] | None = None):
    """The registry for a command: --root, else `cfg`/env.toml [artifacts], else the local default."""
    from nemotron_core.artifacts import open_registry

    env_cfg = _env_artifacts_cfg() if cfg is None else dict(cfg)
    if root:
        same_scheme = str(env_cfg.get("root", "")).split("://", 1)[0] == root.split("://", 1)[0] if "://" in root else False
        opts = env_cfg.get("storage_options", {}) if same_scheme else {}
        return open_registry({"root": root, "storage_options": opts})
    return open_registry(env_cfg or None)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header).rstrip(), *(fmt.format(*map(str, r)).rstrip() for r in rows)]


@app.command("list")
def list_cmd(
    name: str = typer.Argument(None, help="Only this artifact (e.g. nano3-sft-model)."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List artifact versions with their aliases, size and digest."""
    reg = _registry_from_cli(root)
    versions = reg.list(name)
    if as_json:
        typer.echo(json.dumps([v.summary() for v in versions], indent=1))
        return
    if not versions:
        typer.echo(f"no artifacts in {reg.describe()}")
        return
    rows = [[v.ref, ",".join(v.aliases), str(len(v.files)), _human(v.size),
             v.created.strftime("%Y-%m-%d %H:%M") if v.created else "-", v.digest[:19]] for v in versions]
    for line in _table(rows, ["VERSION", "ALIASES", "FILES", "SIZE", "CREATED", "DIGEST"]):
        typer.echo(line)


@app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="NAME, NAME:vN or NAME:ALIAS."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show one version: files, metadata and the lineage tree."""
    reg = _registry_from_cli(root)
    v = reg.show(ref)
    tree = reg.lineage(v.ref)
    if as_json:
        out = v.summary() | {"files": [f.to_json() for f in v.files], "lineage_tree": tree.render()}
        typer.echo(json.dumps(out, indent=1))
        return
    typer.echo(f"{v.ref}  ({', '.join(v.aliases) or 'no aliases'})")
    typer.echo(f"  digest   {v.digest}")
    typer.echo(f"  path     {v.path}")
    typer.echo(f"  created  {v.created.isoformat() if v.created else '-'}")
    typer.echo(f"  size     {_human(v.size)} in {len(v.files)} file(s)")
    typer.echo("metadata:")
    for line in json.dumps(dict(v.metadata), indent=2, sort_keys=True).splitlines():
        typer.echo(f"  {line}")
    typer.echo("files:")
    for line in _table([[f.path, str(f.size), f.hash[:23]] for f in v.files], ["PATH", "SIZE", "HASH"]):
        typer.echo(f"  {line}")
    typer.echo("lineage:")
    for line in tree.render():
        typer.echo(f"  {line}")


@app.command("lineage")
def lineage_cmd(
    ref: str = typer.Argument(..., help="NAME, NAME:vN or NAME:ALIAS."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Print the tree of input versions that produced REF."""
    reg = _registry_from_cli(root)
    for line in reg.lineage(ref).render():
        typer.echo(line)


@app.command("alias")
def alias_cmd(
    ref: str = typer.Argument(..., help="The version to point at (NAME:vN, or NAME:ALIAS); NAME with --remove."),
    alias: str = typer.Argument(..., help="Alias to set or move (e.g. best, prod)."),
    remove: bool = typer.Option(False, "--remove", help="Remove ALIAS from artifact REF instead."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Set (or move, atomically) an alias to a version, or remove it."""
    from nemotron_core.artifacts import parse_ref

    reg = _registry_from_cli(root)
    if remove:
        name = parse_ref(ref).name
        reg.remove_alias(name, alias)
        typer.echo(f"removed alias {name}:{alias}")
        return
    v = reg.set_alias(ref, alias)
    typer.echo(f"{v.name}:{alias} -> {v.ref}")


@app.command("verify")
def verify_cmd(
    ref: str = typer.Argument(None, help="A version (NAME[:vN|:ALIAS]); default: every live version."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Re-read files and check sizes and hashes against the manifest (reads every byte)."""
    reg = _registry_from_cli(root)
    refs = [ref] if ref else [v.ref for v in reg.list()]
    failures: list[str] = []
    for r in refs:
        try:
            v = reg.verify(r)
            typer.echo(f"ok      {v.ref}  {len(v.files)} file(s), {_human(v.size)}")
        except ArtifactError as exc:
            typer.echo(f"FAILED  {r}: {exc}")
            failures.append(str(exc))
    if failures:
        raise ArtifactError(failures[0] if len(failures) == 1 else f"{len(failures)} versions failed verify; first: {failures[0]}")


@app.command("gc")
def gc_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be removed; remove nothing."),
    grace: float = typer.Option(24 * 3600.0, "--grace", metavar="SECONDS",
                                help="Keep staging areas younger than this unless their writer is dead."),
    keep: list[str] = typer.Option([], "--keep", metavar="REF", help="Also keep this version (repeatable)."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Delete versions no alias or kept version's lineage reaches, and abandoned staging areas."""
    reg = _registry_from_cli(root)
    report = reg.gc(dry_run=dry_run, staging_grace_s=grace, keep=keep)
    for line in report.lines():
        typer.echo(line)
