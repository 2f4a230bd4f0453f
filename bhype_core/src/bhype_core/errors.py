"""The error types every bHype package raises; the API and CLI map each to one answer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class BhypeError(Exception):
    """Base of every error bHype reports to a user.

    ``code`` is a stable machine-readable name used in the API's JSON error shape;
    ``http_status`` is the status the API answers with.
    """

    code = "error"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        """The JSON body the API sends for this error."""
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True)
class FieldError:
    """One invalid input: a dotted path (``disks.0.size``) and why it is wrong."""

    path: str
    message: str


class ValidationErrors(BhypeError):
    """Bad input. Collects every problem with its dotted field path, raised once.

    Usage::

        errors = ValidationErrors()
        if not name: errors.add("name", "must not be empty")
        errors.raise_if_any()
    """

    code = "validation_error"
    http_status = 422

    def __init__(self, errors: Iterable[FieldError | tuple[str, str]] = ()) -> None:
        self.errors: list[FieldError] = []
        for error in errors:
            self.add(*error) if isinstance(error, tuple) else self.errors.append(error)
        super().__init__(self._summary())

    def add(self, path: str, message: str) -> None:
        """Record one more problem."""
        self.errors.append(FieldError(path, message))
        self.message = self._summary()
        self.args = (self.message,)

    def extend(self, other: ValidationErrors, prefix: str = "") -> None:
        """Take over another collection's problems, optionally under a path prefix."""
        for error in other.errors:
            path = f"{prefix}.{error.path}" if prefix and error.path else (prefix or error.path)
            self.add(path, error.message)

    def raise_if_any(self) -> None:
        """Raise this collection if it holds any problem."""
        if self.errors:
            raise self

    def _summary(self) -> str:
        if not self.errors:
            return "invalid input"
        return "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in self.errors)

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["fields"] = [{"path": e.path, "message": e.message} for e in self.errors]
        return body


class NotFound(BhypeError):
    """The named thing does not exist (or the caller may not know that it does)."""

    code = "not_found"
    http_status = 404


class Conflict(BhypeError):
    """The request clashes with the current state (name taken, VM running, lock held)."""

    code = "conflict"
    http_status = 409


class Unauthorized(BhypeError):
    """No valid credentials were presented."""

    code = "unauthorized"
    http_status = 401


class Forbidden(BhypeError):
    """The caller is known but may not do this."""

    code = "forbidden"
    http_status = 403


class PluginError(BhypeError):
    """A plugin failed to load, clashed with another, or broke a hook's contract."""

    code = "plugin_error"
    http_status = 500


class ConfigError(BhypeError):
    """The configuration file or environment holds an invalid value (names key and file)."""

    code = "config_error"
    http_status = 500


class CommandError(BhypeError):
    """A host command failed: non-zero exit, timeout, or could not be started."""

    code = "command_failed"
    http_status = 500

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stderr: str = "",
        duration: float = 0.0,
        reason: str = "",
        stdout: str = "",
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout
        self.duration = duration
        self.reason = reason
        self.stderr_tail = "\n".join(stderr.rstrip().splitlines()[-10:])
        what = reason or (f"exited with status {returncode}" if returncode is not None else "failed")
        message = f"command {self.argv[0] if self.argv else '?'} {what} after {duration:.2f}s"
        if self.stderr_tail:
            message += f": {self.stderr_tail}"
        super().__init__(message)

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"].update(
            argv=self.argv,
            returncode=self.returncode,
            stderr_tail=self.stderr_tail,
            duration=round(self.duration, 3),
        )
        return body


class CommandCancelled(CommandError):
    """A host command was stopped because the task that ran it was cancelled (the runner's
    ``cancel`` check answered true): its process group got SIGTERM, then SIGKILL."""

    code = "cancelled"
    http_status = 409


class TaskFailed(BhypeError):
    """A queued task ended with an error; carries what the worker reported about it.

    ``error_type`` is the exception's class name, ``kind`` the task kind, ``plugin`` the plugin
    that registered it, ``log`` the task's log lines up to the failure.
    """

    code = "task_failed"
    http_status = 500

    def __init__(
        self,
        message: str,
        *,
        task_id: str = "",
        kind: str = "",
        plugin: str = "",
        error_type: str = "",
        error_code: str = "",
        log: Sequence[dict] = (),
        traceback: str = "",
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.kind = kind
        self.plugin = plugin
        self.error_type = error_type
        self.error_code = error_code
        self.log = list(log)
        self.traceback = traceback

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"].update(task_id=self.task_id, kind=self.kind, plugin=self.plugin, type=self.error_type)
        return body


class NotSupported(ValidationErrors):
    """A capability the chosen driver or storage backend lacks ("snapshot is not supported by
    storage backend directory"). Decided at plan time, before anything runs, so it answers like
    bad input: 422 with the field that asked for it."""

    code = "not_supported"

    def __init__(self, capability: str, owner: str, path: str = "") -> None:
        self.capability = capability
        self.owner = owner
        super().__init__([(path, f"{capability} is not supported by {owner}")])
