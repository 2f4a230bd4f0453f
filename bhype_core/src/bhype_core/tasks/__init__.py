"""bHype's one task package (issue 12): what a running task receives (:mod:`.context`), how tasks
are submitted and authorised (:mod:`.service`, :mod:`.authz`, :mod:`.validation`), stored
(:mod:`.store`), scheduled fairly with resource locks (:mod:`.plan`, :mod:`.scheduler`,
:mod:`.dispatch`), run (:mod:`.executor`, :mod:`.reporter`, :mod:`.subtasks`), carried by huey
(:mod:`.transport`, :mod:`.scheduled`, :mod:`.serializer`), run on a schedule
(:mod:`.periodic`, :mod:`.periodic_slots`, :mod:`.system`) and recovered after a crash
(:mod:`.liveness`, :mod:`.recovery`, :mod:`.intents`, :mod:`.retention`).

The task context's names are re-exported here: ``from bhype_core.tasks import TaskContext``.
"""

from bhype_core.tasks.context import (
    LOG_LEVELS,
    MAX_LOG_LINE,
    MAX_PROGRESS_MESSAGE,
    Cancelled,
    LogLine,
    MemoryReporter,
    Progress,
    SubTask,
    SubTaskOutcome,
    SubTaskRunner,
    TaskContext,
    TaskReporter,
)

__all__ = [
    "LOG_LEVELS", "MAX_LOG_LINE", "MAX_PROGRESS_MESSAGE", "Cancelled", "LogLine", "MemoryReporter", "Progress",
    "SubTask", "SubTaskOutcome", "SubTaskRunner", "TaskContext", "TaskReporter",
]  # fmt: skip
