"""Errors a user can fix: the CLI prints them as one line (no traceback) and exits with code 2."""


class UserError(Exception):
    """A mistake in the command line, config or input that the user can fix."""


class BadInputFiles(UserError):
    """One or more input files could not be read (corrupt gzip, truncated parquet, ...)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        shown = "; ".join(f"{path}: {err}" for path, err in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"{len(problems)} unreadable input file(s): {shown}{more}. "
            "Fix or remove them, or pass --skip-bad-files to process the readable records "
            "and quarantine the rest."
        )
