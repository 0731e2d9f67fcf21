"""Exceptions a user can act on: the CLI prints them on one line, the UI shows them with st.error."""
from __future__ import annotations


class NurseryError(Exception):
    """Base class: the message is written for the user and says what to do next."""


class InvalidInput(NurseryError):
    """Bad user input; names the file, line and field when there is one."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.file, self.line, self.field = file, line, field
        where = []
        if file:
            where.append(str(file) + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        self.detail = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class NotFound(NurseryError):
    """A named dataset, model, job or deployment does not exist."""


class AlreadyExists(NurseryError):
    """Refusing to overwrite something that is already stored."""


class DuplicateRun(AlreadyExists):
    """A run would write what an active or queued run already writes; `other` names that run (its id, kind,
    status and who started it), so a caller can point at it instead of starting a second one."""

    def __init__(self, message: str, *, other: dict):
        self.other = other
        super().__init__(message)


class InvalidConfig(NurseryError):
    """A training/generation setting is out of range or inconsistent."""


class BackendError(NurseryError):
    """A training backend, cloud provider, SSH host or model server failed."""


class SharedRequest(InvalidInput):
    """A request found both in a golden set and in a training dataset (exact or normalised match)."""

    def __init__(self, request: str, *, golden: str, training: str, other: str | None = None,
                 file: str | None = None, line: int | None = None, field: str | None = "request"):
        self.request, self.golden, self.training = request, golden, training
        seen_as = f" (written there as {other!r})" if other and other != request else ""
        super().__init__(f"the request {request!r} is both in golden set {golden!r} and in training dataset "
                         f"{training!r}{seen_as}: a golden set must never be trained on, so they may not share a request "
                         "(compared after lower-casing and dropping punctuation); remove or reword it in one "
                         "of them", file=file, line=line, field=field)
