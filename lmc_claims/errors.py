"""User-facing errors: each one says what went wrong and how to fix it."""


class LmcClaimsError(Exception):
    """An error caused by input the user can fix; printed without a traceback."""

    def __init__(self, problem: str, fix: str):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\nHow to fix: {fix}")


def unknown_name(kind: str, name: str, known) -> LmcClaimsError:
    known = sorted(known)
    return LmcClaimsError(
        f"Unknown {kind} {name!r}.",
        f"use one of: {', '.join(known)} (`lmc-claims list` shows them all).",
    )
