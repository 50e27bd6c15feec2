"""env.toml profiles: where and how a job runs.

    [slurm-base]                      # a profile: any table that is not a special section
    executor = "slurm"                # local | slurm | ray | docker | dgxcloud | lepton | skypilot
    account = "my-account"
    partition = "batch"

    [dev]
    extends = "slurm-base"            # a name or a list; tables deep-merge, lists replace
    nodes = 1

    [wandb]      entity/project/mode/api_key_env: every profile's W&B default (WANDB_* in jobs)
    [artifacts]  root = "s3://bucket/prefix", storage_options = {...}
                 (or the seed's [artifacts.manifest] root / wandb = true: profile_sections.py)
    [cache]      git_dir, ...
    [cli]        theme = "<Pygments style>" for the config panel

The file is `$NEMOTRON_ENV_FILE`, else the first `env.toml` found walking up from the
working directory to the project root (the first folder with pyproject.toml or .git).
A built-in `local` profile works with no file at all; a `[local]` table in the file is
merged over it. Secrets are referenced by environment variable name (`*_env` keys,
`secrets = ["HF_TOKEN"]`); values of secret-named keys are redacted in written files.

The whole file is validated when loaded (profile_schema.py): unknown keys (with the
nearest known one), wrong types, control characters and bad env var names are one-line
ProfileErrors. Names a profile declares secret are registered with secrets.py, so their
values are redacted from every error message.
"""

from __future__ import annotations

import copy
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron_core.errors import ProfileError, did_you_mean
from nemotron_core.profile_sections import artifacts_section, cli_theme
from nemotron_core.secrets import REDACTED, declare_secret_names, is_secret_name, redact

SPECIAL_SECTIONS = ("wandb", "artifacts", "cache", "cli")
BUILTIN_LOCAL: dict[str, Any] = {"executor": "local", "nproc_per_node": 1}
ENV_FILE_VAR = "NEMOTRON_ENV_FILE"


@dataclass(frozen=True)
class Profile:
    name: str
    data: dict[str, Any]  # merged: extends applied, `extends` removed
    chain: tuple[str, ...]  # resolution order, most derived first
    source: Path | None

    @property
    def executor(self) -> str:
        return self.data.get("executor", "local")

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def secret_names(self) -> list[str]:
        """Env vars this profile declares secret: `secrets` and `wandb.api_key_env`."""
        names = list(self.data.get("secrets") or [])
        wandb = self.data.get("wandb")
        if isinstance(wandb, dict) and wandb.get("api_key_env"):
            names.append(str(wandb["api_key_env"]))
        return names

    def redacted(self) -> dict[str, Any]:
        """The profile as job.yaml records it: secret-named keys, and `env` entries that are
        secrets (named like one or declared in `secrets`), show REDACTED."""
        data = redact(self.data)
        declared = set(self.secret_names())
        for table in ("env", "env_vars"):
            if isinstance(data.get(table), dict):
                data[table] = {k: (REDACTED if (is_secret_name(k) or k in declared) and v not in (None, "") else v)
                               for k, v in data[table].items()}
        return data


@dataclass(frozen=True)
class EnvFile:
    path: Path | None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # raw tables
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)  # special sections

    def names(self) -> list[str]:
        return sorted({"local", *self.profiles})

    def section(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.sections.get(name, {}))

    def profile(self, name: str | None) -> Profile:
        return resolve_profile(self, name or "local")


def find_env_file(start: Path | None = None) -> Path | None:
    """$NEMOTRON_ENV_FILE, else env.toml walking up from `start` to the project root."""
    explicit = os.environ.get(ENV_FILE_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ProfileError(f"{ENV_FILE_VAR}={explicit}: no such file; unset it or point it at an env.toml")
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "env.toml"
        if candidate.is_file():
            return candidate
        if (folder / "pyproject.toml").exists() or (folder / ".git").exists():
            break
    return None


def parse_env_text(text: str, source: str = "env.toml") -> EnvFile:
    """Parse and validate env.toml text (profile_schema.py: unknown keys, types, control characters)."""
    from nemotron_core.profile_schema import validate_env  # lazy: pulls in pydantic, importlib.metadata

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: invalid TOML: {e}") from None
    except RecursionError:  # tomllib parses nested arrays/tables recursively
        raise ProfileError(f"{source}: invalid TOML: values nest too deeply") from None
    profiles: dict[str, dict[str, Any]] = {}
    sections: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if not isinstance(value, dict):
            raise ProfileError(f"{source}: top-level key '{key}' = {value!r}: profiles and sections must be "
                               f"tables, e.g. [{key}]")
        (sections if key in SPECIAL_SECTIONS else profiles)[key] = value
    validate_env(data, source, SPECIAL_SECTIONS)
    if "artifacts" in sections:
        sections["artifacts"] = artifacts_section(sections["artifacts"], sections.get("wandb", {}), source)
    cli_theme(sections.get("cli", {}), source)
    _declare_secrets(profiles, sections)
    return EnvFile(path=Path(source) if source != "env.toml" else None, profiles=profiles, sections=sections)


def _declare_secrets(profiles: dict[str, dict[str, Any]], sections: dict[str, dict[str, Any]]) -> None:
    """Every variable any profile or section declares secret is one, for redaction everywhere."""
    names: list[str | None] = []
    for table in profiles.values():
        names.extend(table.get("secrets") or [])
        if isinstance(table.get("wandb"), dict):
            names.append(table["wandb"].get("api_key_env"))
    for section in ("wandb", "artifacts"):  # [artifacts] backend = "wandb" may name its key variable
        names.append(sections.get(section, {}).get("api_key_env"))
    declare_secret_names(n for n in names if isinstance(n, str))


def load_env(path: Path | None = None, *, start: Path | None = None) -> EnvFile:
    """Load env.toml (given, or found); an EnvFile with only `local` when there is none."""
    path = path or find_env_file(start)
    if path is None:
        return EnvFile(path=None)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"{path}: cannot read env file: {e}") from None
    env = parse_env_text(text, str(path))
    return EnvFile(path=Path(path), profiles=env.profiles, sections=env.sections)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; everything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve_profile(env: EnvFile, name: str) -> Profile:
    source = str(env.path) if env.path else "env.toml"
    order: list[str] = []

    def table_of(n: str, chain: tuple[str, ...]) -> dict[str, Any]:
        if n in chain:
            raise ProfileError(f"{source}: profile 'extends' cycle: {' -> '.join((*chain, n))}")
        if n in env.sections:
            raise ProfileError(f"{source}: '{n}' is a special section ({', '.join(SPECIAL_SECTIONS)}), not a profile")
        if n not in env.profiles and n != "local":
            where = f" in {env.path}" if env.path else " (no env.toml found; only the built-in 'local' exists)"
            raise ProfileError(f"unknown profile '{n}'{where}{did_you_mean(n, env.names())}; "
                               f"available: {', '.join(env.names())}")
        order.append(n)
        raw = env.profiles.get(n, {})
        if n == "local":
            raw = deep_merge(BUILTIN_LOCAL, raw)
        parents = raw.get("extends") or []
        parents = [parents] if isinstance(parents, str) else parents
        merged: dict[str, Any] = {}
        for parent in parents:  # later parents win over earlier ones
            merged = deep_merge(merged, table_of(parent, (*chain, n)))
        own = {k: v for k, v in raw.items() if k != "extends"}
        return deep_merge(merged, own)

    data = table_of(name, ())
    data.setdefault("executor", "local")
    if env.sections.get("wandb"):  # the top-level [wandb] is every profile's default; the profile's own wins
        data["wandb"] = deep_merge(env.sections["wandb"], data.get("wandb") or {})
    return Profile(name=name, data=data, chain=tuple(order), source=env.path)
