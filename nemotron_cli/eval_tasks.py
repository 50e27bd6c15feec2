"""`nemotron nano3 eval -t TASK ...`: the selected tasks become the eval config's `tasks` override.

Task names are data that reach the job's config: each must be a plain name (letters, digits,
`_ . -`), checked here so a bad one fails before anything is prepared; the job checks them again
(recipes/nano3/evaluation/settings.py) and lm-eval resolves the names that are not the project's own.
"""

from __future__ import annotations

import re

from nemotron_core.errors import NemotronError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def tasks_override(tasks: list[str]) -> tuple[str, ...]:
    """`-t a -t b` → ("tasks=[a,b]",); no -t → () (the config's `tasks` stays)."""
    for name in tasks:
        if not _NAME.match(name):
            raise NemotronError(f"-t/--task {name!r}: a task name is letters, digits, '_', '.' or '-' "
                                f"(e.g. -t perplexity -t nano3_qa)")
    unique = list(dict.fromkeys(tasks))
    return (f"tasks=[{','.join(unique)}]",) if unique else ()
