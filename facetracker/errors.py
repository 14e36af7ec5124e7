"""The one error type users see: a single line saying what went wrong, where, and what to do."""


class FacetrackerError(Exception):
    """Bad input or environment. The CLI prints it as one line and exits with status 2."""

    exit_code = 2

    def __init__(self, what: str, where: object | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        parts = [what]
        if where is not None:
            parts[0] = f"{what}: {where}"
        if fix:
            parts.append(fix)
        super().__init__(" — ".join(parts))
