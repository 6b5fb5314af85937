"""How every deploy check ends: each problem on a line of its own, then one verdict line."""

from __future__ import annotations


def verdict(tag: str, errs: list[str], subject: str = "", ok: str = "OK") -> int:
    """Prints `tag: problem` per problem and `tag: [subject ]OK|N problem(s)`; the exit status."""
    for e in errs:
        print(f"{tag}: {e}")
    prefix = f"{subject} " if subject else ""
    print(f"{tag}: {prefix}{ok if not errs else f'{len(errs)} problem(s)'}")
    return 1 if errs else 0
