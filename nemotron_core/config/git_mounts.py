"""`${auto_mount:git+URL@REF[,TARGET]}`: a git repository at one commit, available to the job.

    checkout: ${auto_mount:git+https://github.com/NVIDIA/Megatron-LM.git@core_r0.12.0,/opt/megatron}

The config resolves it without touching the network (a dry run changes nothing): to the
checkout's folder in the git cache for jobs that see the host's files, to TARGET (default
`/nemo_run/repos/<name>`) for container jobs, which get `<cache>/<key>:TARGET` as a mount. The
clone happens at submit time (`clone_repo`), here into `<state>/cache/git` or, on a Slurm
cluster, through its shell into `[cache] git_dir`; a folder already holding that commit is reused.

URL and REF are data: URL must be https://, http://, ssh://, git:// or file:// (never `ext::`,
which runs commands), REF a plain ref name or commit (no leading '-', no `..`, no spaces), and
both reach git after `--` / `--end-of-options` as separate arguments, never through a shell
line. The clone's folder name is derived from a hash of URL and REF, so it stays in the cache.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nemotron_core.errors import ConfigError, NemotronError

_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}")
_URL_CHARS = re.compile(r"[^\s\x00-\x1f\x7f'\"`\\$;|&<>(){}]+")
_NAME = re.compile(r"[^A-Za-z0-9._-]+")
DEFAULT_TARGET_ROOT = "/nemo_run/repos"


@dataclass(frozen=True)
class GitRepo:
    url: str
    ref: str
    target: str  # where a container job sees it

    @property
    def key(self) -> str:
        """The clone's folder name in the cache: readable, and unique per URL and REF."""
        name = _NAME.sub("-", posixpath.basename(self.url.rstrip("/")).removesuffix(".git")).strip(".-") or "repo"
        digest = hashlib.sha256(f"{self.url}@{self.ref}".encode()).hexdigest()[:16]
        return f"{name[:40]}-{digest}"


def parse_git_source(src: str, target: str | None) -> GitRepo:
    """`git+URL@REF` (and an optional TARGET) checked; ConfigError in one line otherwise."""
    shown = src if len(src) <= 160 else src[:150] + "..."
    body = src[len("git+"):]
    url, at, ref = body.rpartition("@")
    if not at or not url or not ref:
        raise ConfigError(f"${{auto_mount:{shown}}}: expected git+URL@REF (e.g. git+https://host/repo.git@v1.2)")
    if not url.startswith(_SCHEMES) or not _URL_CHARS.fullmatch(url):
        raise ConfigError(f"${{auto_mount:{shown}}}: the URL must be {', '.join(s[:-3] for s in _SCHEMES)}:// "
                          f"without spaces or shell characters")
    userinfo = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
    if ":" in userinfo:  # job.yaml, logs and errors show the URL: a password there would land in files
        raise ConfigError(f"${{auto_mount:git+...}}: the URL holds a password; use an SSH key or git's credential "
                          f"helper instead (the URL is written into job.yaml)")
    if not _REF.fullmatch(ref) or ".." in ref or ref.endswith((".", "/", ".lock")) or "//" in ref:
        raise ConfigError(f"${{auto_mount:{shown}}}: REF {ref[:60]!r} must be a branch, tag or commit "
                          f"(letters, digits, . _ / + -, not starting with '-' or containing '..')")
    if target is None:
        target = posixpath.join(DEFAULT_TARGET_ROOT, GitRepo(url, ref, "/").key.rsplit("-", 1)[0])
    if not isinstance(target, str) or not target.startswith("/") or ".." in target.split("/") \
            or not _URL_CHARS.fullmatch(target):
        raise ConfigError(f"${{auto_mount:{shown},{target}}}: TARGET must be an absolute path without '..' "
                          f"or shell characters")
    return GitRepo(url, ref, posixpath.normpath(target))


#: Run by bash with URL, REF and the destination as $1 $2 $3 (never interpolated into the text).
CLONE_SCRIPT = r"""set -eu
url=$1 ref=$2 dest=$3
export GIT_TERMINAL_PROMPT=0
resolve() { git -C "$1" rev-parse --quiet --verify --end-of-options "refs/remotes/origin/$ref^{commit}" \
  || git -C "$1" rev-parse --quiet --verify --end-of-options "$ref^{commit}"; }
if [ -d "$dest/.git" ] && [ ! -L "$dest" ]; then
  git -C "$dest" -c protocol.ext.allow=never fetch --quiet --tags -- origin 2>/dev/null || true
  if sha=$(resolve "$dest") && [ "$(git -C "$dest" rev-parse HEAD)" = "$sha" ]; then echo "$sha"; exit 0; fi
fi
mkdir -p -- "$(dirname -- "$dest")"
tmp=$(mktemp -d -- "$dest.tmp.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
git -c protocol.ext.allow=never clone --quiet --no-checkout -- "$url" "$tmp/r"
sha=$(resolve "$tmp/r") || { echo "no commit named $ref in $url" >&2; exit 3; }
git -C "$tmp/r" -c advice.detachedHead=false checkout --quiet --detach "$sha"
rm -rf -- "$dest"
mv -T -- "$tmp/r" "$dest"
echo "$sha"
"""

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def run_here(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def clone_repo(repo: dict[str, Any], run: Runner = run_here) -> str:
    """Clone `repo` ({url, ref, path} as job.yaml's run.repos records it) into its path; return the commit.

    `run` runs an argv where the clone must live: this machine, or a Slurm cluster's shell.
    """
    url, ref, path = str(repo["url"]), str(repo["ref"]), str(repo["path"])
    parse_git_source(f"git+{url}@{ref}", "/x")  # job.yaml is data too: checked again before use
    out = run(["bash", "-c", CLONE_SCRIPT, "nemotron-git-clone", url, ref, path])
    if out.returncode != 0:
        last = (out.stderr or out.stdout).strip().splitlines()[-1:] or [f"exit {out.returncode}"]
        raise NemotronError(f"${{auto_mount:git+{url}@{ref}}}: clone into {path} failed: {last[0][:300]}")
    return out.stdout.strip().splitlines()[-1]
