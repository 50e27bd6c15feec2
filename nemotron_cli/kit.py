"""`nemotron kit squash` arguments: the seed's `PROFILE IMAGE` order, or `IMAGE` with -r/-b PROFILE."""

from __future__ import annotations

from nemotron_core.errors import NemotronError, ProfileError

USAGE = "nemotron kit squash PROFILE IMAGE (or: nemotron kit squash IMAGE -r PROFILE)"


def squash_target(words: list[str], global_profile: str | None) -> tuple[str, str]:
    """(profile, image) from the command's words and the global -r/-b profile."""
    if len(words) == 2:
        profile, image = words
        if global_profile and global_profile != profile:
            raise NemotronError(f"'nemotron kit squash': two profiles, {profile!r} (argument) and "
                                f"{global_profile!r} (-r/-b); give one: {USAGE}")
        return profile, image
    if len(words) == 1:
        if not global_profile:
            raise ProfileError(f"'nemotron kit squash' needs a Slurm profile: {USAGE}")
        return global_profile, words[0]
    raise NemotronError(f"'nemotron kit squash' takes at most 2 arguments, got {len(words)}: {USAGE}")
