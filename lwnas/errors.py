"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class LwnasError(Exception):
    """A problem with the user's input (spec, config name, budget, data path...)."""


class SpecError(LwnasError):
    """An invalid architecture spec; `path` names the offending field, e.g. `stages[1].blocks[0].out`."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)
