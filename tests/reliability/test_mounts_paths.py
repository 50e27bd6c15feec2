"""`${auto_mount:...}` reaches the container, and paths survive the `/nemo_run` rewrite (issue 18, section 8).

Through the real CLI (`--dry-run` and `--batch`), with stub `sbatch`/`srun`/`scontrol`
first on PATH (tests/reliability/test_script_injection.py) that run the script and record
srun's options and the job's environment.
"""

from __future__ import annotations

import yaml

from tests.reliability.test_script_injection import (bash_n, cli, dry_run_script, profile_text,  # noqa: F401
                                                     srun_record, stubs)


def test_auto_mount_reaches_the_container_mounts(cli, stubs, tmp_path, capsys):
    host = tmp_path / "host data"
    host.mkdir()
    toml = profile_text(container_image="img:1", mounts=["/lustre/a:/lustre/a"])
    assert cli(toml, "--run", "p", "--dry-run", "sleep=0", f"+extra_path=${{auto_mount:{host}}}") == 0, \
        capsys.readouterr().err
    text = dry_run_script(capsys)
    bash_n(text)
    assert cli(toml, "--batch", "p", "sleep=0", f"+extra_path=${{auto_mount:{host}}}") == 0, capsys.readouterr().err
    mounts = srun_record(stubs)["opts"]["--container-mounts"].split(",")
    job_dir = next((tmp_path / "state" / "jobs" / "test-job").iterdir())
    assert mounts[0] == f"{job_dir}:/nemo_run"  # first: pyxis mounts in order, the next one lies inside it
    assert "/lustre/a:/lustre/a" in mounts and f"{host}:/nemo_run/mounts/host data" in mounts
    assert (job_dir / "mounts" / "host data").is_dir()  # the mount point exists in the job dir
    (train,) = (tmp_path / "state" / "jobs" / "test-job").glob("*/train.yaml")
    assert "extra_path: /nemo_run/mounts/host data" in train.read_text()


def test_auto_mount_without_a_container_is_the_host_path(cli, stubs, tmp_path, capsys):
    """A container-free job sees the submitter's filesystem: the path stays as written, no mount."""
    host = tmp_path / "host data"
    host.mkdir()
    assert cli(profile_text(), "--batch", "p", "sleep=0", f"+extra_path=${{auto_mount:{host}}}") == 0, \
        capsys.readouterr().err
    assert "--container-mounts" not in srun_record(stubs)["opts"]
    (train,) = (tmp_path / "state" / "jobs" / "test-job").glob("*/train.yaml")
    assert yaml.safe_load(train.read_text())["extra_path"] == str(host)


def test_a_container_free_profile_keeps_its_state_paths(cli, stubs, tmp_path, capsys):
    state = tmp_path / "state"
    assert cli(profile_text(), "--batch", "p", "sleep=0", state=state) == 0, capsys.readouterr().err
    env = srun_record(stubs)["env"]
    assert env["NEMORUN_HOME"] == f"{state}/nemo_run"  # was <state><state>/jobs/... (the /nemo_run rewrite)
    assert env["TMPDIR"] == f"{state}/tmp"
    assert (stubs / "job.rc").read_text().strip() == "0", (stubs / "job.out").read_text()[-3000:]


def test_a_state_folder_under_a_nemo_run_folder_works(cli, stubs, tmp_path, capsys):
    state = tmp_path / "nemo_run" / "state"
    assert cli(profile_text(env={"P": f"{state}/nemo_run/x"}), "--batch", "p", "sleep=0", state=state) == 0, \
        capsys.readouterr().err
    job_dir = next((state / "jobs" / "test-job").iterdir())
    rec = srun_record(stubs)
    assert rec["opts"]["--chdir"] == f"{job_dir}/code" and rec["opts"]["--output"].startswith(f"{job_dir}/log-")
    assert rec["cmd"][-2:] == ["--config", f"{job_dir}/train.yaml"]
    assert rec["env"]["P"] == f"{state}/nemo_run/x" and rec["env"]["NEMOTRON_STATE_DIR"] == str(state)
    assert (stubs / "job.rc").read_text().strip() == "0", (stubs / "job.out").read_text()[-3000:]

    # In a container: the job dir is /nemo_run there, the state folder keeps its own path.
    before = set((state / "jobs" / "test-job").iterdir())
    assert cli(profile_text(container_image="img:1"), "--batch", "p", "sleep=0", state=state) == 0
    (job_dir,) = set((state / "jobs" / "test-job").iterdir()) - before
    rec = srun_record(stubs)
    mounts = rec["opts"]["--container-mounts"].split(",")
    assert f"{state}:{state}" in mounts and f"{job_dir}:/nemo_run" in mounts
    assert rec["cmd"][-2:] == ["--config", "/nemo_run/train.yaml"] and rec["env"]["TMPDIR"] == f"{state}/tmp"
