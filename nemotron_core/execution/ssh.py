"""SSH connections to a Slurm login node (profile `tunnel = "ssh"`): checked host keys, bounded time, one line.

    cluster = ssh_cluster(profile)           # what a later process needs to reconnect (goes into jobref.json)
    tunnel = connect(cluster)                # nemo-run SSHTunnel with an open, checked fabric Connection
    home = remote_home(tunnel, cluster)      # the login node's $HOME (default remote_job_dir)

Why not nemo-run's own `SSHTunnel.connect()`: fabric's client accepts ANY host key (AutoAddPolicy),
and when the key is refused nemo-run prompts for a password on stdin and then calls sys.exit(1).
Here the tunnel object is nemo-run's (executors and renderers keep working), but its connection is
opened by us:
- host keys: the profile's `known_hosts` file, else ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts;
  an unknown or changed key is refused (nothing is ever added to a known_hosts file);
- time: `connect_timeout` seconds (default 20) for each of TCP connect, SSH banner and authentication;
- keys only: the profile's `identity` (with `~` expanded), else the agent and ~/.ssh keys; no passwords;
- every failure is one SSHError line naming the profile, user@host:port and what failed.
"""

from __future__ import annotations

import errno
import getpass
import os
import socket
from pathlib import Path
from typing import Any, Callable

from nemotron_core.compat import nemo_run
from nemotron_core.errors import NemotronError, ProfileError
from nemotron_core.profiles import Profile

DEFAULT_CONNECT_TIMEOUT = 20
DEFAULT_REMOTE_JOB_DIR = "~/.nemotron/jobs"  # on the login node; `~` is its $HOME
_SYSTEM_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


class SSHError(NemotronError):
    """The login node could not be reached (or the connection was lost)."""


def ssh_cluster(profile: Profile) -> dict[str, Any]:
    """How to reach the profile's login node: plain values, saved in jobref.json for a later process."""
    if not profile.get("host"):
        raise ProfileError(f"profile '{profile.name}': tunnel = 'ssh' needs host = \"login-node\" (and user, "
                           f"identity unless ~/.ssh/config or the agent provide them)")
    timeout = profile.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    return {"tunnel": "ssh", "host": profile.get("host"), "user": profile.get("user") or _local_user(),
            "port": profile.get("port"),
            "identity": os.path.expanduser(str(profile.get("identity"))) if profile.get("identity") else None,
            "known_hosts": os.path.expanduser(str(profile.get("known_hosts"))) if profile.get("known_hosts") else None,
            "connect_timeout": timeout, "profile": profile.name}


def _local_user() -> str:
    return os.environ.get("USER") or getpass.getuser()


def describe(cluster: dict[str, Any]) -> str:
    return f"{cluster.get('user') or ''}@{cluster.get('host')}:{cluster.get('port') or 22}"


def _fail(cluster: dict[str, Any], what: str) -> SSHError:
    profile = cluster.get("profile")
    where = f"profile '{profile}': " if profile else ""
    return SSHError(f"{where}cannot connect to {describe(cluster)}: {what}")


def _host_keys(client: Any, cluster: dict[str, Any]) -> str:
    """Load the known host keys into the paramiko client; returns the files' names for messages."""
    if cluster.get("known_hosts"):
        path = Path(cluster["known_hosts"])
        if not path.is_file():
            raise _fail(cluster, f"known_hosts file {path} does not exist (profile key known_hosts)")
        client.get_host_keys().load(str(path))  # load(), not load_host_keys(): nothing is ever saved
        return str(path)
    files = [os.path.expanduser(f) for f in _SYSTEM_KNOWN_HOSTS]
    for f in files:
        if os.path.isfile(f):
            client.load_system_host_keys(f)
    return " or ".join(files)


def connect(cluster: dict[str, Any]) -> Any:
    """A nemo-run SSHTunnel whose fabric Connection is open (see the module docstring)."""
    import paramiko  # lazy: paramiko is a heavy import
    from fabric import Config, Connection  # lazy: fabric is a heavy import

    if not cluster.get("host"):
        raise _fail(cluster, "no host (set host = \"login-node\" in the profile)")
    identity = cluster.get("identity")
    if identity and not os.path.isfile(identity):
        raise _fail(cluster, f"identity file {identity} does not exist (profile key identity)")
    timeout = int(cluster.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT)
    run = nemo_run()
    tunnel = run.SSHTunnel(host=cluster["host"], user=cluster.get("user") or "", port=cluster.get("port"),
                           identity=identity, job_dir=cluster.get("remote_job_dir") or "/tmp")
    connect_kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout,
                                      "channel_timeout": timeout}
    if identity:  # only this key: an agent's other keys would count against MaxAuthTries
        connect_kwargs.update(key_filename=[identity], look_for_keys=False, allow_agent=False)
    session = Connection(cluster["host"], user=cluster.get("user") or None, port=cluster.get("port"),
                         connect_timeout=timeout, connect_kwargs=connect_kwargs, forward_agent=False,
                         config=Config(overrides={"run": {"in_stream": False}}))
    session.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    known = _host_keys(session.client, cluster)
    try:
        session.open()
    except paramiko.BadHostKeyException:
        raise _fail(cluster, f"host key mismatch: the key the server sent differs from the one in {known} "
                             f"(the login node was reinstalled, or this is not it); check with its admins, "
                             f"then update {known}") from None
    except paramiko.AuthenticationException:
        who = f"identity {identity}" if identity else "the agent's and ~/.ssh keys"
        raise _fail(cluster, f"authentication failed for user {cluster.get('user')} with {who} "
                             f"(is the public key in the login node's authorized_keys?)") from None
    except paramiko.ssh_exception.NoValidConnectionsError as e:
        codes = {getattr(err, "errno", None) for err in e.errors.values()}
        what = "connection refused (no SSH server on that port?)" if codes <= {errno.ECONNREFUSED} else str(e)
        raise _fail(cluster, what) from None
    except socket.gaierror as e:
        raise _fail(cluster, f"cannot resolve host name ({e.strerror})") from None
    except (socket.timeout, TimeoutError):
        raise _fail(cluster, f"no answer within {timeout} s (connect_timeout)") from None
    except paramiko.SSHException as e:
        text = str(e)
        if "not found in known_hosts" in text:
            raise _fail(cluster, f"host key unknown: the server is not in {known}; connect once with "
                                 f"`ssh -p {cluster.get('port') or 22} {describe(cluster).rsplit(':', 1)[0]}` "
                                 f"and check the fingerprint, or set known_hosts in the profile") from None
        if "banner" in text.lower() or "no existing session" in text.lower():  # the banner never came
            raise _fail(cluster, f"no SSH answer within {timeout} s (connect_timeout): {text}") from None
        raise _fail(cluster, " ".join(text.split()) or type(e).__name__) from None
    except OSError as e:
        raise _fail(cluster, e.strerror or str(e)) from None
    transport = session.client.get_transport()
    if transport is not None:
        transport.set_keepalive(15)  # a silent network drop is noticed, not waited on forever
    session.transport = transport
    tunnel.session = session
    return tunnel


def connected(tunnel: Any) -> bool:
    session = getattr(tunnel, "session", None)
    return bool(session is not None and session.is_connected)


def close(tunnel: Any) -> None:
    session = getattr(tunnel, "session", None)
    if session is not None:
        try:
            session.close()
        except Exception:  # already closed by the other side
            pass


def connection_lost(exc: BaseException) -> bool:
    """True for the errors a dropped connection raises from a command or a file transfer."""
    import paramiko  # lazy: paramiko is a heavy import

    return isinstance(exc, (paramiko.SSHException, EOFError, OSError)) and not isinstance(exc, SSHError)


def expand_remote(path: str, home: str) -> str:
    """`~` and `~/x` against the login node's home; other paths unchanged."""
    if path == "~":
        return home
    if path.startswith("~/"):
        return f"{home.rstrip('/')}/{path[2:]}"
    return path


def remote_home(run_command: Callable[..., Any], cluster: dict[str, Any]) -> str:
    """The login node's $HOME, asked through `run_command(argv) -> CompletedProcess`."""
    out = run_command(["printenv", "HOME"])
    home = (out.stdout or "").strip()
    if out.returncode != 0 or not home.startswith("/") or "\n" in home:
        raise SSHError(f"profile '{cluster.get('profile')}': {describe(cluster)} reported no usable $HOME "
                       f"({home[:80]!r}); set remote_job_dir in the profile")
    return home
