"""The contract between recipe scripts and whatever runs them (CLI, Prefect tasks).

- A script is started as `SCRIPT --config train.yaml [passthrough...]`.
- It writes only under the config's `output_dir`, and writes `RESULT.json` there LAST,
  only on success (stats, metrics, what it read). No RESULT.json = no usable output.
- The caller registers `output_dir` as the stage's artifact after the job succeeded;
  scripts never publish artifacts themselves (so a failed or killed job can never leave
  a half-registered version).
- Exit codes: 0 success; 2 user error (bad config/data: do not retry);
  RESUME_EXIT_CODE after SIGTERM (preemption, time limit): a checkpoint was saved and
  the orchestrator should run the job again with `resume: auto`.
"""

RESULT_FILE = "RESULT.json"
OUTPUT_DIR_KEY = "output_dir"
USER_ERROR_EXIT_CODE = 2
RESUME_EXIT_CODE = 75  # EX_TEMPFAIL: "try again later"
# Written to output_dir with RESUME_EXIT_CODE: {exit_code, signal, step, checkpoint}. Launchers
# such as torchrun turn the worker's 75 into 1, so callers also look for this file.
PREEMPTED_FILE = "PREEMPTED.json"
