"""Ray on a Slurm allocation without containers: the head on the first node, a worker on each other.

nemo-run's Slurm RayJob template needs pyxis (every srun has --container-* flags), writes
/launch-head.sh and pins Ray's ports (6379, 52365, 53001-53009), which two Ray nodes on
one host would share. `renderer()` picks this instead for `launch = "ray"` on nodes > 1
without a container image. nemo-run still renders the sbatch script (headers, exports,
secrets, retries, the command's srun line with its log file); `render_ray_plain_sbatch`
puts a Ray cluster in front of that srun line and runs the command on the head with
RAY_ADDRESS set (the recipes connect to it: recipes/nano3/common/shards.init_ray).

In the job:
1. `<job dir>/ray/nodes.txt`: "<node> <ip>" for every node (one `scontrol show node` call,
   NodeAddr resolved with getent), plus the two helpers below (node.sh, wait.py);
2. one srun on the first node: `ray start --head --block`; one srun with a task on every
   other node: `ray start --address=<head ip>:<port> --block`;
3. wait.py: the job goes on once every node has joined, and fails with the log folder
   when a node's srun ends first or after $NEMOTRON_RAY_START_TIMEOUT s (default 300);
4. the command runs on the head; on exit the Ray steps get SIGTERM (the end of the job
   would kill them anyway) and the /tmp links below are removed.

Ports: the GCS port is the profile's `ray_port`, else derived from the job id
(20000 + 2 * (id % 5000)), so two jobs sharing a host do not collide; the Ray client
server takes the next one; Ray picks every other port itself (no dashboard; its default worker
ports 10002-19999 and agent port 52365 would collide between nodes sharing a host).
Temp dir per node: <job dir>/ray/<node>. Ray's unix sockets lie under it and their paths
must stay under 108 bytes, so a long one is reached through a short symlink in a per-user
0700 folder on that node (`python -m nemotron_core.paths ray-link`: the rule of
nemotron_core.paths.short_ray_link, run from the job's code root).
Nodes on loopback (several slurmd on one host, as the test cluster runs them) all have
NodeAddr 127.0.0.1, which Ray would swap for the host's network address (and it refuses
multi-node clusters when told not to, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0): each such node
gets its own loopback address 127.0.0.2, 127.0.0.3, ...
"""

from __future__ import annotations

import shlex

from nemotron_core.execution.options import JobPaths, SlurmExecutor, job_options

START_TIMEOUT_S = 300  # default for $NEMOTRON_RAY_START_TIMEOUT

# One Ray node; run by srun on its node: node.sh head|worker <ray dir> <gcs port> <head ip> <python> <code root>
NODE_SH = r"""set -euo pipefail
role=$1 dir=$2 port=$3 head_ip=$4 python=$5 code=$6
node=${SLURMD_NODENAME:-$(hostname -s)}
ip=$(awk -v n="$node" '$1 == n {print $2}' "$dir/nodes.txt")
[[ -n $ip ]] || { echo "ray: node $node is not in $dir/nodes.txt" >&2; exit 1; }
real=$dir/$node
mkdir -p "$real"
# Ray's socket paths must stay under 108 bytes: a long temp dir is reached through a short link in a
# per-user 0700 folder, owner-checked, never one another user made (one rule: nemotron_core.paths).
tmp=$(PYTHONPATH="$code${PYTHONPATH:+:$PYTHONPATH}" "$python" -m nemotron_core.paths ray-link "$real")
export RAY_TMPDIR=$tmp RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
# sbatch passes the submitter's environment on; `scripts/ray env` sets this to 0 (one-host head on
# loopback), which makes a worker refuse to join a multi-node cluster ("not supported on Windows and OSX").
unset RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
# Port 0: Ray picks a free one (its defaults, 52365 and workers on 10002-19999, collide on a shared host).
args=(--node-ip-address="$ip" --node-name="$node" --temp-dir="$tmp" --dashboard-agent-listen-port=0
      --min-worker-port=0 --max-worker-port=0 --disable-usage-stats --block)
if [[ -n ${SLURM_CPUS_ON_NODE:-} ]]; then args+=(--num-cpus="$SLURM_CPUS_ON_NODE"); fi  # Slurm's count, not the host's
if [[ $role == head ]]; then
    exec "$python" -m ray.scripts.scripts start --head --port="$port" --ray-client-server-port=$((port + 1)) \
        --include-dashboard=false "${args[@]}"
fi
exec "$python" -m ray.scripts.scripts start --address="$head_ip:$port" "${args[@]}"
"""

# Wait until every node joined: wait.py <head ip:port> <nodes> <timeout s> <srun pid>...
WAIT_PY = r"""import os, socket, sys, time

address, want, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pids = [int(p) for p in sys.argv[4:]]
folder = os.path.dirname(os.path.abspath(__file__))
deadline = time.monotonic() + limit


def fail(why):
    sys.exit(f"ray: {why}; see {folder}/*.out and {folder}/<node>/session_latest/logs")


def check():
    for pid in pids:  # an srun that ended (or a zombie) = a node that will never join
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ended = fh.read().rsplit(") ", 1)[1].startswith("Z")
        except FileNotFoundError:
            ended = True
        if ended:
            fail(f"a Ray node's srun (pid {pid}) ended before all {want} nodes joined")
    if time.monotonic() > deadline:
        fail(f"not all {want} nodes joined {address} in {limit:.0f} s")


host, port = address.rsplit(":", 1)
while True:  # the head's GCS port first: ray.init on a closed port fails slowly
    check()
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        break
    except OSError:
        time.sleep(1)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
import ray

ray.init(address=address, log_to_driver=False, logging_level="WARNING")
while len(alive := [n for n in ray.nodes() if n["Alive"]]) < want:
    check()
    time.sleep(1)
print(f"ray: {len(alive)} nodes joined:", *sorted(f"{n['NodeName']}={n['NodeManagerAddress']}" for n in alive),
      flush=True)
"""

# "<node> <ip>" per node of the allocation; loopback nodes get distinct loopback addresses.
NODES_TXT = r"""scontrol show node -o "$SLURM_JOB_NODELIST" \
    | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^Node(Name|Addr)=/) {split($i, kv, "="); v[kv[1]] = kv[2]}
            print v["NodeName"], v["NodeAddr"]}' \
    | { loop=0; while read -r node addr; do
          ip=$(getent ahostsv4 "$addr" | awk 'NR == 1 {print $1}'); ip=${ip:-$addr}
          if [[ $ip == 127.* ]]; then ip=127.0.$((loop / 250)).$((2 + loop % 250)); loop=$((loop + 1)); fi
          echo "$node $ip"
      done; } > "$ray_dir/nodes.txt"
"""


def cluster_lines(executor: SlurmExecutor, paths: JobPaths, *, code_root: str) -> str:
    """Bash: start the Ray cluster on the allocation and export RAY_ADDRESS (before the command's srun)."""
    opts = job_options(executor)
    ray_dir = f"{paths.in_job}/ray"
    code = shlex.quote(code_root)
    port = str(opts.ray_port) if opts.ray_port else "$((20000 + 2 * (SLURM_JOB_ID % 5000)))"
    py = shlex.quote(opts.python)
    return "\n".join([
        "# ---- Ray cluster on the allocation, no containers (nemotron_core/execution/backends/ray_slurm.py)",
        "{ set +vx; } 2>/dev/null  # the helpers are written untraced",
        f"ray_dir={shlex.quote(ray_dir)}",
        'mkdir -p "$ray_dir"',
        f"cat > \"$ray_dir/node.sh\" <<'NEMOTRON_RAY_NODE'\n{NODE_SH}NEMOTRON_RAY_NODE",
        f"cat > \"$ray_dir/wait.py\" <<'NEMOTRON_RAY_WAIT'\n{WAIT_PY}NEMOTRON_RAY_WAIT",
        "set -v",
        f"ray_port={port}",
        'ray_nodes=( $(scontrol show hostnames "$SLURM_JOB_NODELIST") )',
        'ray_head=${ray_nodes[0]}',
        NODES_TXT.rstrip(),
        'ray_head_ip=$(awk -v n="$ray_head" \'$1 == n {print $2}\' "$ray_dir/nodes.txt")',
        f'srun --overlap --nodes=1 --ntasks=1 -w "$ray_head" --output="$ray_dir/head-%j.out" '
        f'bash "$ray_dir/node.sh" head "$ray_dir" "$ray_port" "$ray_head_ip" {py} {code} &',
        "ray_pids=($!)",
        f'srun --overlap --nodes=$((${{#ray_nodes[@]}} - 1)) --ntasks=$((${{#ray_nodes[@]}} - 1)) --ntasks-per-node=1 '
        f'--exclude="$ray_head" --output="$ray_dir/worker-%t-%j.out" '
        f'bash "$ray_dir/node.sh" worker "$ray_dir" "$ray_port" "$ray_head_ip" {py} {code} &',
        "ray_pids+=($!)",
        # SIGTERM, up to 10 s for the steps to end (Ray's gcs_server may hang on SIGTERM: the job's end kills
        # it), then the short /tmp links into this job's folder go, on every node.
        'ray_stop() {',
        '    kill -TERM "${ray_pids[@]}" 2>/dev/null || true',
        '    for _ in $(seq 20); do [[ -z $(jobs -rp) ]] && break; sleep 0.5; done',
        '    srun --overlap --nodes="${#ray_nodes[@]}" --ntasks-per-node=1 --time=1 '
        f'env PYTHONPATH={code} {py} -m nemotron_core.paths remove-ray-links "$ray_dir" >/dev/null 2>&1 || true',
        # ^ never changes the job's exit code (the script runs under set -e; nodes sharing a host race here)
        '}',
        "trap ray_stop EXIT",
        f'{py} "$ray_dir/wait.py" "$ray_head_ip:$ray_port" "${{#ray_nodes[@]}}" '
        f'"${{NEMOTRON_RAY_START_TIMEOUT:-{START_TIMEOUT_S}}}" "${{ray_pids[@]}}" || exit 1',
        'export RAY_ADDRESS="$ray_head_ip:$ray_port"',
        "",
    ])
