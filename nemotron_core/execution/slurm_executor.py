"""The executor of a Slurm profile: nemo-run's SlurmExecutor fields in our own dataclass.

    ex = SlurmJobExecutor(account=..., nodes=2, ntasks_per_node=8, launcher="torchrun", ...)
    ex.sbatch_fields()      # the fields that become `#SBATCH` lines (nemo-run's SBATCH_FLAGS we set)
    ex.torchrun_words()     # `torchrun --rdzv-... --nnodes N --nproc-per-node P --node-rank R --tee 3`
    ex.packager             # nemo-run's packager, built on first use (imports nemo-run)
    ex.to_nemo_run(...)     # nemo-run's SlurmExecutor, for its Ray container template only

Why not nemo-run's SlurmExecutor itself: importing nemo-run (fiddle, torchx, every executor,
Lepton's client included) takes ~1.5 s, and `nemotron ... --run <slurm> --dry-run` is what a
cluster user types before every submit. The sbatch text is ours anyway (backends/sbatch_script.py);
it needs only these fields, so the dry-run and the submit render it from this one object, and
nemo-run is imported when code is packaged for a real submit or its Ray template is rendered.

The field names and defaults are nemo-run 0.11's (account ... additional_parameters, open_mode
"append", stderr_to_stdout), and the torchrun line is what its Torchrun launcher renders through
torchx, with one change: `--rdzv-id $SLURM_JOB_ID` instead of a random number, so the text is the
same every time it is rendered and two jobs never share a rendezvous id.
tests/execution/test_slurm_executor.py checks both against nemo-run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron_core.compat import nemo_run
from nemotron_core.execution.options import JobOptions

# Our fields that nemo-run's SlurmExecutor writes as `#SBATCH --<name>` (a subset of its SBATCH_FLAGS).
SBATCH_FIELDS = ("account", "partition", "nodes", "ntasks_per_node", "gpus_per_node", "time", "cpus_per_task", "mem",
                 "qos", "gres", "constraint", "exclusive", "open_mode", "comment")
HEAD_NODE_IP = "$head_node_ip"  # set by the script's setup lines (sbatch_script.render)
NODE_RANK = "$SLURM_NODEID"


@dataclass(frozen=True)
class Tunnel:
    """Where Slurm's clients run: here (`local`) or on the login node over SSH; `job_dir` holds the job dirs."""

    kind: str  # local | ssh
    job_dir: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    identity: str | None = None


@dataclass
class SlurmJobExecutor:
    """One Slurm job's resources, container, environment and launcher (nemo-run's field names)."""

    tunnel: Tunnel
    account: str | None = None
    partition: str | None = None
    nodes: int = 1
    ntasks_per_node: int = 1
    gpus_per_node: int | None = None
    time: str = "00:10:00"
    cpus_per_task: int | None = None
    mem: str | None = None
    qos: str | None = None
    gres: str | None = None
    constraint: str | None = None
    exclusive: bool | None = None
    open_mode: str = "append"
    comment: str | None = None
    container_image: str | None = None
    container_mounts: list[str] = field(default_factory=list)
    container_env: list[str] | None = None
    srun_args: list[str] | None = None
    env_vars: dict[str, str] = field(default_factory=dict)
    setup_lines: str | None = None
    retries: int = 0
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    stderr_to_stdout: bool = True
    job_name_prefix: str = "nemotron-"
    launcher: str | None = None  # "torchrun" or None (the command runs as is)
    rdzv_port: int = 29500  # torchrun's c10d store on the first node
    packager_choice: str = "self-contained"  # packaging.PACKAGERS
    code_excludes: tuple[str, ...] = ()
    script_path: str = ""  # the recipe script (the self-contained packager starts from it)
    nemotron: JobOptions = field(default_factory=JobOptions)
    _packager: Any = field(default=None, repr=False)

    def sbatch_fields(self) -> dict[str, Any]:
        """The `#SBATCH` fields that are set. With torchrun, one task per node runs `torchrun
        --nproc-per-node N` (nemo-run's Torchrun launcher sets ntasks_per_node = 1 the same way)."""
        fields = {k: getattr(self, k) for k in SBATCH_FIELDS if getattr(self, k) is not None}
        if self.launcher == "torchrun":
            fields["ntasks_per_node"] = 1
        return fields

    def torchrun_words(self) -> list[str]:
        """torchrun and its own options (before the script), as nemo-run's torchrun component writes them."""
        if self.nodes == 1:  # one agent: port 0 lets torch elastic pick a free port
            endpoint, rank = "localhost:0", "0"
        else:
            endpoint, rank = f"{HEAD_NODE_IP}:{self.rdzv_port}", NODE_RANK
        return ["torchrun", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "$SLURM_JOB_ID",
                "--nnodes", str(self.nodes), "--nproc-per-node", str(self.ntasks_per_node), "--node-rank", rank,
                "--tee", "3"]

    @property
    def ships_code(self) -> bool:
        """False for `packager = "none"` (the job runs from this checkout)."""
        return self.packager_choice != "none" if self._packager is None else _ships(self._packager)

    @property
    def packager(self) -> Any:
        """nemo-run's packager for the profile's choice (imports nemo-run: only a real submit packages code)."""
        if self._packager is None:
            from nemotron_core.execution.packaging import make_packager  # lazy: pulls in nemo_run, omegaconf

            self._packager = make_packager(self.packager_choice, script_path=self.script_path,
                                           excludes=self.code_excludes)
        return self._packager

    def copy(self, **changes: Any) -> SlurmJobExecutor:
        """A copy with `changes` (lists and dicts copied too: the job's copy never changes the profile's)."""
        ex = copy.copy(self)
        for name in ("container_mounts", "env_vars", "additional_parameters"):
            setattr(ex, name, copy.copy(getattr(self, name)))
        for name, value in changes.items():
            setattr(ex, name, value)
        return ex

    def to_nemo_run(self, *, name: str, job_dir: str) -> Any:
        """nemo-run's SlurmExecutor with these fields, set up for the job in `job_dir` (a LocalTunnel:
        rendering reads only its job_dir). For nemo-run's Ray container template."""
        run = nemo_run()
        # lazy: nemo_run.core.execution.slurm is a heavy import
        from nemo_run.core.execution.slurm import SlurmJobDetails

        kwargs = {k: getattr(self, k) for k in SBATCH_FIELDS if k not in ("open_mode", "comment")}
        ex = run.SlurmExecutor(**kwargs, container_image=self.container_image,
                               container_mounts=list(self.container_mounts), env_vars=dict(self.env_vars),
                               setup_lines=self.setup_lines, retries=self.retries, job_name_prefix=self.job_name_prefix,
                               additional_parameters=dict(self.additional_parameters), poll_estimated_start_time=False,
                               tunnel=run.LocalTunnel(job_dir=str(Path(job_dir).parent)))
        ex.job_dir = ex.experiment_dir = job_dir
        ex.experiment_id = Path(job_dir).name
        ex.job_details = SlurmJobDetails(job_name=name, folder=job_dir)
        ex.comment = self.comment
        return ex


def _ships(packager: Any) -> bool:
    from nemotron_core.execution.packaging import ships_code  # lazy: pulls in nemo_run, omegaconf

    return ships_code(packager)
