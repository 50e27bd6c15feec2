"""SlurmShell: runs Slurm clients (sbatch, squeue, scontrol, sacct) and file copies on the cluster,
here (LocalTunnel, with the profile's SLURM_CONF) or over the login node's SSH connection.

One shell per cluster per process (`shell_for`), so one SSH connection serves every job there.
Clients run with secret-named variables and a profile's declared secrets removed from their
environment: sbatch copies its environment into the job, and slurmctld stores it in its state folder.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from nemotron_core.errors import NemotronError, ProfileError
from nemotron_core.execution import ssh
from nemotron_core.execution.options import SlurmExecutor, job_options
from nemotron_core.execution.secrets_file import scrubbed_environ
from nemotron_core.profiles import Profile

T = TypeVar("T")


class SlurmError(NemotronError):
    """sbatch/squeue/scancel failed, or Slurm is not reachable."""


class SlurmShell:
    """Runs Slurm commands on the cluster: here (LocalTunnel) or over SSH (nemo-run SSHTunnel).

    Built from `ref.cluster` so a later process reaches the same cluster without the profile.
    """

    def __init__(self, cluster: dict[str, Any]):
        self.cluster = dict(cluster)
        self.kind = self.cluster.get("tunnel", "local")
        self._ssh: Any = None  # nemo-run's SSHTunnel with an open fabric connection (ssh.connect)
        self._ssh_lock = threading.RLock()  # one SSH connection, used by one thread at a time
        self._checked = False
        self._home: str | None = None

    @property
    def key(self) -> str:
        if self.kind == "ssh":
            return f"ssh://{self.cluster.get('user', '')}@{self.cluster.get('host')}:{self.cluster.get('port') or 22}"
        return f"local:{self.cluster.get('slurm_conf') or ''}"

    @classmethod
    def for_executor(cls, executor: SlurmExecutor) -> SlurmShell:
        tunnel = executor.tunnel  # slurm_executor.Tunnel
        if tunnel.kind == "ssh":
            cluster = job_options(executor).ssh or {"tunnel": "ssh", "host": tunnel.host, "user": tunnel.user,
                                                    "port": tunnel.port, "identity": tunnel.identity}
            return cls(dict(cluster))
        return cls({"tunnel": "local", "slurm_conf": job_options(executor).slurm_conf or os.environ.get("SLURM_CONF")})

    def home(self) -> str:
        """The login node's $HOME (asked once per shell)."""
        if self._home is None:
            self._home = ssh.remote_home(self.run, self.cluster)
        return self._home

    def env(self, hide: Iterable[str] = ()) -> dict[str, str]:
        """This environment minus secret-named variables and `hide` (a profile's declared secrets)."""
        env = scrubbed_environ(names=hide)
        if self.cluster.get("slurm_conf"):
            env["SLURM_CONF"] = self.cluster["slurm_conf"]
        return env

    def preflight(self) -> None:
        """Fail in one line, at once, where a Slurm client would hang or fail late: with a missing
        SLURM_CONF every client hangs 60 s; without sbatch on PATH the submission fails late."""
        if self.kind != "local":
            return
        conf = self.cluster.get("slurm_conf")
        if conf and not Path(conf).is_file():  # checked every time: a test cluster may be gone
            raise SlurmError(f"SLURM_CONF={conf} does not exist (Slurm clients would hang 60 s); "
                             f"start the cluster (scripts/slurm start) or fix SLURM_CONF")
        if self._checked:
            return
        if shutil.which("sbatch", path=self.env().get("PATH")) is None:
            raise SlurmError("sbatch is not on PATH: install the Slurm client here, or use a profile with "
                             "tunnel = \"ssh\" and host = <login node>")
        self._checked = True

    def run(self, argv: list[str], *, timeout: float = 60, input: str | None = None,
            hide: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client; `hide` names variables kept out of its environment (sbatch copies
        its environment into the job, and slurmctld stores it in its state folder)."""
        self.preflight()
        if self.kind == "ssh":
            return self._run_ssh(argv, timeout=timeout, input=input)
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(hide),
                                  input=input)
        except subprocess.TimeoutExpired:
            raise SlurmError(f"'{shlex.join(argv)}' did not answer in {timeout:.0f} s: is slurmctld up? "
                             f"(`scontrol ping`)") from None

    def close(self) -> None:
        """Close the SSH connection, if one is open (a later command reconnects)."""
        if self._ssh is not None:
            ssh.close(self._ssh)
            self._ssh = None

    def _tunnel(self) -> Any:
        """The open SSH connection; (re)connects when there is none or the last one dropped."""
        if self._ssh is None or not ssh.connected(self._ssh):
            if self._ssh is not None:
                ssh.close(self._ssh)
                self._ssh = None
            self._ssh = ssh.connect(self.cluster)
        return self._ssh

    def _over_ssh(self, what: str, action: Callable[[Any], T], *, retry: bool) -> T:
        """Run `action(tunnel)` on the connection. A connection that dropped (login node rebooted,
        network gone) is reopened and, when `retry` (the action can safely run twice), tried once
        more; otherwise, or when reconnecting fails, one SSHError line."""
        with self._ssh_lock:
            for attempt in (1, 2):
                tunnel = self._tunnel()
                try:
                    return action(tunnel)
                except Exception as e:
                    if not ssh.connection_lost(e):
                        raise
                    ssh.close(tunnel)
                    self._ssh = None
                    if attempt == 2 or not retry:
                        where = f"profile '{self.cluster['profile']}': " if self.cluster.get("profile") else ""
                        raise ssh.SSHError(f"{where}the connection to {ssh.describe(self.cluster)} was lost during "
                                           f"{what} ({type(e).__name__}: {' '.join(str(e).split()) or 'closed'}); "
                                           f"run again: the job is found again (re-attached) from its "
                                           f"job dir") from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _run_ssh(self, argv: list[str], *, timeout: float, input: str | None) -> subprocess.CompletedProcess[str]:
        from invoke.exceptions import CommandTimedOut  # lazy: invoke.exceptions is a heavy import

        if input is not None:
            raise ValueError("stdin is not forwarded over SSH here; copy a file with put() instead")
        command = shlex.join(argv)
        try:
            # sbatch is never sent twice: a submission lost with the connection is found by its comment.
            result = self._over_ssh(f"'{argv[0]}'", lambda t: t.run(command, hide=True, warn=True, timeout=timeout),
                                    retry=argv[0] != "sbatch")
        except CommandTimedOut:
            raise SlurmError(f"'{command[:200]}' did not answer in {timeout:.0f} s on "
                             f"{self.cluster.get('host')}") from None
        return subprocess.CompletedProcess(argv, result.return_code, result.stdout, result.stderr)

    # files on the cluster's filesystem ---------------------------------------------------

    def local_fs(self) -> bool:
        return self.kind == "local"

    def put(self, local: Path, remote: str, *, private: bool = False) -> None:
        """Copy a local file to the cluster's filesystem (nothing to do when it is the same file).

        `private`: the remote file is created 0600 before any byte is sent (secrets never sit
        in a readable file, and never travel on a command line, where `ps` would show them).
        """
        if self.local_fs():
            if Path(local).resolve() != Path(remote).resolve():
                Path(remote).parent.mkdir(parents=True, exist_ok=True)
                if private:
                    os.close(os.open(remote, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
                shutil.copyfile(local, remote)
            return
        folder, target = shlex.quote(str(Path(remote).parent)), shlex.quote(remote)
        prepare = f"mkdir -p {folder}" + (f" && (umask 077; : > {target}) && chmod 600 {target}" if private else "")
        out = self.run(["bash", "-c", prepare])
        if out.returncode != 0:
            raise SlurmError(f"cannot write {remote} on {self.cluster.get('host')}: {out.stderr.strip()}")
        self._over_ssh(f"the copy of {Path(local).name}", lambda t: t.put(str(local), remote), retry=True)

    def read_from(self, path: str, offset: int) -> bytes:
        if self.local_fs():
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    return fh.read()
            except FileNotFoundError:
                return b""
        out = self.run(["tail", "-c", f"+{offset + 1}", path])
        return out.stdout.encode() if out.returncode == 0 else b""

    def glob(self, folder: str, pattern: str) -> list[str]:
        if self.local_fs():
            return sorted(str(p) for p in Path(folder).glob(pattern))
        out = self.run(["bash", "-c", f"cd {shlex.quote(folder)} 2>/dev/null && ls -1 {pattern} 2>/dev/null"])
        return sorted(f"{folder}/{name}" for name in out.stdout.split())


_SHELLS: dict[str, SlurmShell] = {}
SHELLS_LOCK = threading.Lock()


def shell_for(cluster: dict[str, Any]) -> SlurmShell:
    """One shell (one SSH connection) per cluster per process."""
    shell = SlurmShell(cluster)
    with SHELLS_LOCK:
        return _SHELLS.setdefault(shell.key, shell)


def forget_shells() -> None:
    """Close every cluster shell's SSH connection and forget the shells (caller holds SHELLS_LOCK)."""
    for shell in _SHELLS.values():
        shell.close()
    _SHELLS.clear()


def remote_job_dir(profile: Profile) -> str:
    """Where job dirs go on the cluster: the profile's `remote_job_dir`, else ~/.nemotron/jobs; a leading
    `~` is the login node's home, asked over SSH (once per process), so only then does this connect."""
    cluster = ssh.ssh_cluster(profile)  # checks host first: a profile without one is refused before any connection
    raw = str(profile.get("remote_job_dir") or ssh.DEFAULT_REMOTE_JOB_DIR)
    if raw == "~" or raw.startswith("~/"):
        raw = ssh.expand_remote(raw, shell_for(cluster).home())
    if not raw.startswith("/"):
        raise ProfileError(f"profile '{profile.name}': remote_job_dir = {raw!r} must be an absolute path on the "
                           f"cluster or start with ~/ (the login node's home)")
    return raw.rstrip("/") or "/"
