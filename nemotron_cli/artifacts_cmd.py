"""`nemotron artifacts list|show|lineage|alias|verify|gc`.

Which registry: `--root URI` (a folder, file://, s3://), else the `[artifacts]` table of
env.toml (nemotron_core.profiles), else the local default `<state>/artifacts`.
Heavy modules (fsspec, s3fs, wandb) load inside the commands, so `nemotron --help`
stays instant. User errors raise ArtifactError (the main app prints `error: ...`, exit 2).

`--dry-run`: list/show/lineage/verify only read, and run as usual; `alias` and `gc` print
what they would change ("would point ...", "would delete version ...") and write nothing.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from nemotron_cli.dry_run import dry_run_of, honours_dry_run
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
@honours_dry_run  # read-only
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
@honours_dry_run  # read-only
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
@honours_dry_run  # read-only
def lineage_cmd(
    ref: str = typer.Argument(..., help="NAME, NAME:vN or NAME:ALIAS."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Print the tree of input versions that produced REF."""
    reg = _registry_from_cli(root)
    for line in reg.lineage(ref).render():
        typer.echo(line)


@app.command("alias")
@honours_dry_run
def alias_cmd(
    ctx: typer.Context,
    ref: str = typer.Argument(..., help="The version to point at (NAME:vN, or NAME:ALIAS); NAME with --remove."),
    alias: str = typer.Argument(..., help="Alias to set or move (e.g. best, prod)."),
    remove: bool = typer.Option(False, "--remove", help="Remove ALIAS from artifact REF instead."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Set (or move, atomically) an alias to a version, or remove it."""
    from nemotron_core.artifacts import parse_ref

    reg = _registry_from_cli(root)
    if dry_run_of(ctx):
        typer.echo(_alias_plan(reg, ref, alias, remove=remove))
        return
    if remove:
        name = parse_ref(ref).name
        reg.remove_alias(name, alias)
        typer.echo(f"removed alias {name}:{alias}")
        return
    v = reg.set_alias(ref, alias)
    typer.echo(f"{v.name}:{alias} -> {v.ref}")


def _alias_plan(reg, ref: str, alias: str, *, remove: bool) -> str:
    """What `alias` would do, checked as the real command checks it (same errors), from reads only."""
    from nemotron_core.artifacts.refs import check_alias, check_name, parse_ref

    check_alias(alias)
    if remove:
        name = check_name(parse_ref(ref).name)
        table = reg.aliases(name)
        if alias not in table:
            raise ArtifactError(f"artifact {name} has no alias {alias!r} (aliases: {', '.join(sorted(table)) or 'none'})")
        return f"would remove alias {name}:{alias} (now -> {name}:v{table[alias]}); dry run: nothing changed"
    v = reg.resolve(ref)
    now = reg.aliases(v.name).get(alias)
    where = "new alias" if now is None else f"now -> {v.name}:v{now}"
    return f"would point {v.name}:{alias} -> {v.ref} ({where}); dry run: nothing changed"


@app.command("verify")
@honours_dry_run  # read-only
def verify_cmd(
    ref: str = typer.Argument(None, help="A version (NAME[:vN|:ALIAS]); default: every live version."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Re-read files and check sizes and hashes against the manifest (reads every byte)."""
    from nemotron_core.artifacts import VerifyResult

    reg = _registry_from_cli(root)
    if ref:
        try:
            results = [VerifyResult(ref, reg.verify(ref), None)]
        except ArtifactError as exc:
            results = [VerifyResult(ref, None, str(exc))]
    else:
        results = reg.verify_all()  # every live version and alias file: corrupt records fail, never hidden
    failures: list[str] = []
    for r in results:
        if r.version is not None:
            typer.echo(f"ok      {r.version.ref}  {len(r.version.files)} file(s), {_human(r.version.size)}")
        else:
            typer.echo(f"FAILED  {r.ref}: {r.problem}")
            failures.append(str(r.problem))
    if failures:
        raise ArtifactError(failures[0] if len(failures) == 1 else f"{len(failures)} versions failed verify; first: {failures[0]}")


@app.command("gc")
@honours_dry_run
def gc_cmd(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be removed; remove nothing."),
    grace: float = typer.Option(24 * 3600.0, "--grace", metavar="SECONDS",
                                help="Keep staging areas younger than this unless their writer is dead."),
    keep: list[str] = typer.Option([], "--keep", metavar="REF", help="Also keep this version (repeatable)."),
    root: str = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Delete versions no alias or kept version's lineage reaches, and abandoned staging areas."""
    reg = _registry_from_cli(root)
    # The global pre-parser takes --dry-run off the command line (dry_run_of); the option above
    # is what `--help` shows and what in-process callers (CliRunner) pass.
    report = reg.gc(dry_run=dry_run or dry_run_of(ctx), staging_grace_s=grace, keep=keep)
    for line in report.lines():
        typer.echo(line)
