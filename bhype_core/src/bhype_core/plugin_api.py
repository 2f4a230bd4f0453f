"""bHype's public plugin surface: the one module a plugin imports from the core.

Everything a plugin under ``plugins/`` (or a third party's) may use is re-exported here,
typed and documented where it is defined; every other ``bhype_core`` module is private and may
change without notice. A meta-test (``tests/core/test_plugin_api_surface.py``) fails when a
plugin imports any other ``bhype_core`` module. A plugin that needs something missing here
asks for a seam: it is added to the core, documented, typed and tested, then exported here.

What is here, by purpose (``__all__`` is the authoritative list):

* **Hooks** — :data:`hookimpl`; the specifications live in :mod:`bhype_core.hookspecs`
  (each hook's docstring is its reference).
* **Registry records** — :class:`SettingsSection`, :class:`DriverEntry`,
  :class:`StorageBackendEntry`, :class:`TaskKind`, :class:`PeriodicJob`, :class:`Watcher`,
  :class:`Sampler`, :class:`UndoAction` (what recovery runs for a ``context.intent``),
  :class:`RouterEntry`, :class:`CliCommand`, :class:`ModelSet`, :class:`DoctorCheck` (+
  :class:`CheckResult`), :class:`EventKind`; settings sections subclass :class:`Section`.
* **Runtime and tasks** — :class:`Runtime`, :class:`TaskContext` (``context.submit`` /
  ``context.wait`` run sub-tasks: :class:`SubTask`, :class:`SubTaskOutcome`), :class:`Cancelled`;
  :func:`accept_task` submits a task for the caller and builds the ``202``
  :class:`TaskAccepted`; :func:`submit_as_system` queues a top-level task owned by ``@system``
  (a kind that declares ``system=True``: work a plugin's own periodic job fans out, such as
  one backup job's run, that must not wait in the periodic task's slot); :func:`list_tasks`/
  :func:`show_task` read tasks as a user may see them.
* **API dependencies** — :data:`RuntimeDep`, :data:`PrincipalDep`, :data:`AdminDep`,
  :data:`AuthenticatedDep`, :data:`AuthServiceDep`, :data:`PUBLIC` (a route anyone may call),
  :class:`Principal`, :func:`client_address`.
* **Errors** — :class:`BhypeError` and its family; the API maps each to one JSON shape.
* **Events** — :class:`Event`, :class:`EventKind`, :func:`event_kinds` (the catalog).
* **VMs** — :func:`get_vm`, :func:`find_vm`, :func:`list_vms`, :func:`list_vm_summaries`, :func:`may_see`,
  :func:`is_admin`, :func:`vm_ref`, :func:`is_running`, :func:`register_vm`/
  :func:`unregister_vm` (fire the ``bhype_vm_*_register`` hooks), :func:`open_datastore`,
  :func:`active_driver`, :func:`status_driver`, :class:`VM` (read-only rows),
  :class:`VMRef`, :class:`VMSpec`, :class:`VMSummary`/:func:`summary`, :data:`LIVE_FIELDS`,
  :func:`list_page`/:class:`ListQuery` (the paginated VM list the API and CLI use),
  :func:`mark_unknown` (VMs of an unreachable group host show ``unknown``, issue 22).
* **Suspend to disk** (issue 19) — :func:`suspend_supported` (can this host's driver suspend:
  capability ``suspend``, detected on bhyve), :func:`suspended_state` (a VM's saved state, or
  ``None``); the task kind ``vm.suspend`` saves a running VM and stops it, and ``vm.start``
  resumes it (``discard_saved_state`` boots afresh); :class:`SuspendFailed` (the guest runs
  on), :class:`ResumeRefused` (the saved state no longer fits the VM).
* **Lifecycle hooks** — a plugin whose task changes a VM (snapshot, rollback, clone, backup …)
  fires the matching pair through :func:`vm_before` (a veto propagates) and :func:`vm_after`
  (failures recorded, returned as :class:`HookFailure`; :func:`hook_errors` puts them in a
  task result), never through ``pm.hook`` by hand.
* **Storage** — :class:`StorageBackend`, :class:`Volume`, :data:`ProgressCallback`,
  :func:`check_filename`, :data:`NAME_RE`, :data:`ISO_RE`; :class:`Undo` (reverse steps); the
  capabilities a backend declares and their records (:class:`StorageCapability`,
  :class:`ConsistentPoint`, :class:`ExportStream`, :class:`ExportFiles`, :class:`SpaceStats`,
  :class:`VolumeStats`).
* **Drivers** — :class:`HypervisorDriver`, :class:`VMStatus`, :class:`VMState`,
  :class:`Problem`, :class:`Attachments`, and what a driver declares: :class:`DriverCapability`,
  :class:`FirmwareRules`, :data:`SpecCheck`, :class:`VMStats`, :class:`DiskStats`;
  :class:`FrozenDisks` (what ``freeze_disks``/``consistent_point`` hold: a running VM's disks
  at one instant, capability ``CONSISTENT_POINT``); :class:`DirtyTracker` (``track_dirty``:
  the disk extents a running guest wrote between passes, capability ``DIRTY_TRACKING``;
  :class:`FinalChanges`, :class:`TrackingLost`, :func:`covering_blocks`) and the checked block
  copy that uses it: :func:`copy_blocks`, :class:`BlockMap`, :func:`block_manifest_digest`.
* **A plugin's own hooks** (the web UI's extension hooks) — :class:`Catalog` and :func:`collect`
  gather records registered through them, attributed to their plugin, as the core's registry
  does.
* **Database** — :func:`session`; column types and helpers for a plugin's own tables.
* **Retention** — the one Sanoid-style policy (keep last N, per period counts) for snapshot
  schedules and backup jobs: :class:`RetentionPolicy`, :class:`RetentionCandidate`,
  :func:`retention_prune`, :func:`retention_label_by_bucket`, :func:`retention_due_periods`,
  :func:`retention_bucket`, :func:`retention_protected`, :data:`RETENTION_PERIODS`
  (:mod:`bhype_core.retention_policy`).
* **Live metrics** — :func:`publish_live_metrics` (the monitoring sampler, each tick) and
  :func:`read_live_metrics` (the API, ``/metrics``, SNMP): the newest host/VM/pool values, in
  Redis or the fact store (shape in :mod:`bhype_core.live_metrics`).
* **Last backups** (issue 20) — :func:`last_backup_times` asks every backup plugin (hook
  ``bhype_vm_last_backups``) for each VM's newest good backup and merges the answers (the
  newest wins); the SNMP agent's last-backup column reads it once per refresh.
* **Host** — :func:`detect_platform`, :func:`switch_interface` (a switch's bridge interface on
  the host, ``vm-<name>``: where a restore drill reaches a guest's port),
  :class:`ProbeState`/:func:`read_probe` (probed facts);
  :func:`write_atomic` replaces a root-owned file in one step without following symlinks
  (``mode=0o600`` for secrets), :class:`UnsafeFile` when a path is not what it should be.
* **Templates and images** — :func:`template_catalog`, :func:`cloud_image_status` (a
  template's cloud image and whether the library has it), :func:`list_isos`, :func:`iso_settings`.
* **Units and bounds** — :func:`human_size`, :func:`parse_size`; bounded integers for request
  models and columns (:data:`Int64`, :data:`NonNegativeInt64`, :data:`PositiveInt64`,
  :data:`INT64_MIN`/:data:`INT64_MAX`) and :func:`event_id` (a ``Last-Event-ID`` header).
* **Browser sessions** (for web front ends) — :func:`read_login_form`,
  :func:`password_login`, :class:`BrowserLogin`, :func:`end_browser_session`,
  :func:`csrf_cookie`, :func:`api_token_role`, :func:`sse`, :class:`SessionEnded`,
  :class:`TooManyAttempts`.
* **Consoles** (for web front ends) — :func:`broker_path` says whether the root worker's console
  broker must open a VM's console for this process (an unprivileged API); :class:`ConsoleBrokerClient`
  asks it, :class:`ConsoleBrokerUnavailable` when it is not running; task code in the worker opens a
  running VM's console itself with :func:`open_vm_console` (a restore drill reading the serial
  console).
* **Web UI extensions** — what a plugin registers through the web UI plugin's own hooks
  (``bhype_webui_register_pages`` …, implemented with ``@hookimpl(optionalhook=True)``):
  :class:`Page`, :class:`VMTab`, :class:`DashboardPanel`, :class:`NavEntry`, :class:`Assets`,
  :class:`VMColumn` (an extra column of the VM list);
  their ``context`` functions get a :class:`UiRequest`.
* **Transfers** (shared by backups and moves; :mod:`bhype_core.transfer`) — argv builders
  :func:`rsync_argv` (+ :class:`SshTransport`, :func:`daemon_url`, :func:`ssh_destination`,
  :func:`path_arg`), :func:`zfs_send_argv`/:func:`zfs_receive_argv`/:func:`zfs_resume_argv`;
  parsers :func:`parse_rsync_progress`, :func:`parse_rsync_stats` (:class:`RsyncStats`),
  :class:`TransferProgress`, :class:`RsyncExit`/:func:`describe_exit`; runs :func:`run_rsync`
  and :func:`send_receive` (progress, cancel, timeout; :class:`TransferFailed`,
  :class:`SendResult`), :func:`task_progress`; secrets :func:`write_secret`/:func:`read_secret`/
  :func:`remove_secret`; SSH host keys :func:`pin_host_key`, :func:`parse_known_hosts`,
  :func:`fingerprint`. :class:`CommandCancelled` is what a runner raises when its ``cancel``
  check stops a command.
* **Group hosts** (issue 22) — :func:`group_hosts` (every registered host as a
  :class:`HostState`: its ``core_host`` row, :data:`REACHABLE`/:data:`UNREACHABLE`, heartbeat
  age), :func:`unreachable_hosts` (names of those whose heartbeat is stale, remembered a second),
  :func:`local_host_name` (this process's host); :func:`adopt_vm` gives a moved VM's one
  record to the host it arrived on; ``context.submit(kind, arguments, host=…)`` runs a sub-task
  on another host's worker (a remote sub-task).
* **CLI** — :func:`connection_options`, :func:`api_subcommand` (a sub-command's parser with
  ``--json`` and the connection options), :func:`api_from`, :class:`VmApi`, :func:`follow`,
  :class:`StreamEvent`, :func:`format_table`.
"""

from __future__ import annotations

from bhype_core.api.accepted import TaskAccepted, accept_task
from bhype_core.api.auth_service import SessionEnded
from bhype_core.api.browser import (
    BrowserLogin,
    api_token_role,
    csrf_cookie,
    end_browser_session,
    password_login,
    read_login_form,
    sse,
)
from bhype_core.api.deps import RuntimeDep
from bhype_core.api.limits import INT64_MAX, INT64_MIN, Int64, NonNegativeInt64, PositiveInt64, event_id
from bhype_core.api.principal import AdminDep, Principal, PrincipalDep
from bhype_core.api.security import PUBLIC, AuthenticatedDep, AuthServiceDep, client_address
from bhype_core.auth.throttle import TooManyAttempts
from bhype_core.cloud_images import image_status as cloud_image_status
from bhype_core.commands.plugins import format_table
from bhype_core.commands.subcommands import api_subcommand
from bhype_core.commands.task_follow import StreamEvent, follow
from bhype_core.commands.template import connection_options
from bhype_core.commands.vm_client import VmApi, api_from
from bhype_core.config import Section
from bhype_core.consoles.client import ConsoleBrokerClient, ConsoleBrokerUnavailable, broker_path
from bhype_core.consoles.locate import open_vm_console
from bhype_core.db.models import USER_LENGTH, utcnow
from bhype_core.db.session import session
from bhype_core.db.task_models import FINAL_STATES, RETRYABLE_STATES, Task
from bhype_core.db.task_models import STATES as TASK_STATES
from bhype_core.db.types import ID, TABLE_OPTIONS, JSONText, UTCDateTime
from bhype_core.drivers.base import Attachments, HypervisorDriver, Problem, VMState, VMStatus
from bhype_core.drivers.capabilities import Capability as DriverCapability
from bhype_core.drivers.capabilities import DiskStats, FirmwareRules, FrozenDisks, SpecCheck, VMStats
from bhype_core.drivers.saved_state import ResumeRefused, SuspendFailed
from bhype_core.errors import (
    BhypeError,
    CommandCancelled,
    CommandError,
    ConfigError,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    PluginError,
    TaskFailed,
    Unauthorized,
    ValidationErrors,
)
from bhype_core.event_kinds import SEVERITIES, EventKind
from bhype_core.events import Event
from bhype_core.facts import ProbeState, read_probe
from bhype_core.hookspecs import hookimpl
from bhype_core.host.platform import detect_platform
from bhype_core.hosts.registry import REACHABLE, UNREACHABLE, HostState
from bhype_core.hosts.registry import host_states as group_hosts
from bhype_core.hosts.settings import local_host_name
from bhype_core.hosts.states import cached_unreachable as unreachable_hosts
from bhype_core.hosts.states import mark_unknown
from bhype_core.isos import iso_settings, list_isos
from bhype_core.last_backups import last_backup_times
from bhype_core.live_metrics import publish_live_metrics, read_live_metrics
from bhype_core.network.models import SwitchPublic
from bhype_core.network.models import bridge_name as switch_interface
from bhype_core.network.service import list_switches
from bhype_core.registry import (
    Catalog,
    CheckResult,
    CliCommand,
    DoctorCheck,
    DriverEntry,
    ModelSet,
    PeriodicJob,
    RouterEntry,
    Sampler,
    SettingsSection,
    StorageBackendEntry,
    TaskKind,
    UndoAction,
    Watcher,
    collect,
)
from bhype_core.retention_policy import PERIODS as RETENTION_PERIODS
from bhype_core.retention_policy import Candidate as RetentionCandidate
from bhype_core.retention_policy import Policy as RetentionPolicy
from bhype_core.retention_policy import bucket as retention_bucket
from bhype_core.retention_policy import due_periods as retention_due_periods
from bhype_core.retention_policy import label_by_bucket as retention_label_by_bucket
from bhype_core.retention_policy import protected as retention_protected
from bhype_core.retention_policy import prune as retention_prune
from bhype_core.runtime import Runtime
from bhype_core.safe_files import UnsafeFile, write_atomic
from bhype_core.spec import VMSpec
from bhype_core.spec_parts import ISO_RE, NAME_RE
from bhype_core.storage.base import ProgressCallback, StorageBackend, Volume, check_filename
from bhype_core.storage.capabilities import (
    ConsistentPoint,
    ExportFiles,
    ExportStream,
    SpaceStats,
    StorageCapability,
    VolumeStats,
)
from bhype_core.tasks import Cancelled, SubTask, SubTaskOutcome, TaskContext
from bhype_core.tasks.service import list_visible as list_tasks
from bhype_core.tasks.service import show as show_task
from bhype_core.tasks.system import submit_as_system
from bhype_core.transfer import (
    RsyncExit,
    RsyncStats,
    SendResult,
    SshTransport,
    TransferFailed,
    TransferProgress,
    daemon_url,
    describe_exit,
    fingerprint,
    parse_known_hosts,
    parse_rsync_progress,
    parse_rsync_stats,
    path_arg,
    pin_host_key,
    read_secret,
    remove_secret,
    rsync_argv,
    run_rsync,
    send_receive,
    ssh_destination,
    task_progress,
    write_secret,
    zfs_receive_argv,
    zfs_resume_argv,
    zfs_send_argv,
)
from bhype_core.ui_records import Assets, ContextFunction, DashboardPanel, NavEntry, Page, UiRequest, VMColumn, VMTab
from bhype_core.units import human_size, parse_size
from bhype_core.vm.access import owns_vm
from bhype_core.vm.edit import LIVE_FIELDS
from bhype_core.vm.hooks import HookFailure, VMVerb, hook_errors, vm_after, vm_before
from bhype_core.vm.listing import ListQuery, list_page
from bhype_core.vm.models import VM, VMRef
from bhype_core.vm.public import VMSummary, summary
from bhype_core.vm.registration import adopt_vm, register_vm, unregister_vm, vm_records_available
from bhype_core.vm.service import (
    find_vm,
    get_vm,
    is_admin,
    is_running,
    list_vm_summaries,
    list_vms,
    may_see,
    status_driver,
    vm_ref,
)
from bhype_core.vm.services import active_driver, open_datastore, template_catalog
from bhype_core.vm.settings import vm_settings
from bhype_core.vm.suspend import suspend_supported, suspended_state
from bhype_core.vm.undo import Undo


def event_kinds(runtime: Runtime) -> list[EventKind]:
    """Every event kind this process knows: the core's (``task.failed`` …) and each loaded
    plugin's, in registration order. What a ``bhype_notify`` consumer reads to build a MIB,
    filter by severity or label a popup."""
    return list(runtime.registry.event_kinds)


__all__ = [
    "CommandCancelled", "RsyncExit", "RsyncStats", "SendResult", "SshTransport", "TransferFailed", "TransferProgress",
    "daemon_url", "describe_exit", "fingerprint", "parse_known_hosts", "parse_rsync_progress", "parse_rsync_stats",
    "path_arg", "pin_host_key", "read_secret", "remove_secret", "rsync_argv", "run_rsync", "send_receive",
    "ssh_destination", "task_progress", "write_secret", "zfs_receive_argv", "zfs_resume_argv", "zfs_send_argv",
    "UndoAction",
    "RETENTION_PERIODS", "RetentionCandidate", "RetentionPolicy", "retention_bucket", "retention_due_periods",
    "retention_label_by_bucket", "retention_protected", "retention_prune",
    "ConsoleBrokerClient", "ConsoleBrokerUnavailable", "broker_path", "open_vm_console",
    "Assets", "ContextFunction", "DashboardPanel", "NavEntry", "Page", "UiRequest", "VMColumn", "VMTab",
    "cloud_image_status",
    "Attachments", "Catalog", "ConsistentPoint", "DiskStats", "DriverCapability", "ExportFiles", "ExportStream",
    "FirmwareRules", "HypervisorDriver", "Problem", "SpaceStats", "SpecCheck", "StorageCapability", "VMState",
    "VMStats", "VMStatus", "VolumeStats", "collect",
    "Sampler", "SubTask", "SubTaskOutcome",
    "INT64_MAX", "INT64_MIN", "Int64", "NonNegativeInt64", "PositiveInt64", "event_id",
    "FINAL_STATES", "ID", "ISO_RE", "LIVE_FIELDS", "NAME_RE", "PUBLIC", "RETRYABLE_STATES", "SEVERITIES",
    "TABLE_OPTIONS", "TASK_STATES", "USER_LENGTH", "VM", "AdminDep", "AuthServiceDep", "AuthenticatedDep",
    "BhypeError", "BrowserLogin", "Cancelled", "CheckResult", "CliCommand", "CommandError", "ConfigError",
    "Conflict", "DoctorCheck", "DriverEntry", "Event", "EventKind", "FieldError", "Forbidden", "HookFailure",
    "JSONText", "ListQuery", "ModelSet", "NotFound", "PeriodicJob", "PluginError", "Principal", "PrincipalDep",
    "ProbeState", "ProgressCallback", "RouterEntry", "Runtime", "RuntimeDep", "Section", "SessionEnded",
    "SettingsSection", "StorageBackend", "StorageBackendEntry", "StreamEvent", "SwitchPublic", "Task",
    "TaskAccepted", "TaskContext", "TaskFailed", "TaskKind", "TooManyAttempts", "UTCDateTime", "Unauthorized",
    "Undo", "VMRef", "VMSpec", "VMSummary", "VMVerb", "ValidationErrors", "VmApi", "Volume", "Watcher",
    "accept_task", "active_driver", "api_from", "api_token_role", "check_filename", "client_address",
    "api_subcommand", "connection_options", "csrf_cookie", "detect_platform", "end_browser_session", "event_kinds",
    "find_vm",
    "follow", "format_table", "get_vm", "hook_errors", "hookimpl", "human_size", "is_admin", "is_running",
    "iso_settings", "list_isos", "list_page", "list_switches", "list_tasks", "list_vm_summaries", "list_vms", "may_see",
    "publish_live_metrics", "read_live_metrics",
    "mark_unknown", "open_datastore", "owns_vm",
    "parse_size", "password_login", "read_login_form", "read_probe", "register_vm", "session", "show_task",
    "sse", "status_driver", "submit_as_system", "summary", "template_catalog", "unregister_vm", "utcnow",
    "vm_after", "vm_before",
    "vm_records_available", "vm_ref", "vm_settings",
    "UnsafeFile", "write_atomic",
    "ResumeRefused", "SuspendFailed", "suspend_supported", "suspended_state",
    "last_backup_times",
    "FrozenDisks", "switch_interface",
    # s7-group (issue 22): the group's hosts, moves inside a group
    "HostState", "REACHABLE", "UNREACHABLE", "adopt_vm", "group_hosts", "local_host_name", "unreachable_hosts",
]  # fmt: skip

# --- issue 17 (s7-migrate-zfs): replicating a dataset tree in passes (a warm ZFS move) and the
# block-aware copy of a zvol snapshot into a sparse image file (ZFS → directory moves, backups).
from bhype_core.transfer import (  # noqa: E402
    ImageCopy,
    ZfsEnd,
    destroy_snapshot,
    destroy_tree,
    parse_send_size,
    replica_receive_argv,
    replica_send_argv,
    same_snapshot,
    send_pass,
    take_snapshot,
    zvol_to_image,
)
from bhype_core.transfer import estimate as estimate_send  # noqa: E402
from bhype_core.transfer.zfs_replica import exists as zfs_exists  # noqa: E402
from bhype_core.transfer.zfs_replica import guid as zfs_guid  # noqa: E402

__all__ += [
    "ImageCopy", "ZfsEnd", "destroy_snapshot", "destroy_tree", "estimate_send", "parse_send_size", "zfs_exists",
    "zfs_guid",
    "replica_receive_argv", "replica_send_argv", "same_snapshot", "send_pass", "take_snapshot", "zvol_to_image",
]  # fmt: skip

# --- issue 17 (s9-dirty): dirty-block tracking of a running VM (driver capability
# ``DIRTY_TRACKING``) and the checked block-range copy a warm move uses with it.
from bhype_core.drivers.dirty import (  # noqa: E402
    DirtyTracker,
    Extent,
    FinalChanges,
    TrackingLost,
    covering_blocks,
    extent_bytes,
    merge_extents,
)
from bhype_core.transfer.dirty_copy import MANIFEST_DIR as BLOCK_MANIFEST_DIR  # noqa: E402
from bhype_core.transfer.dirty_copy import PREFIX as BLOCKS_PREFIX  # noqa: E402
from bhype_core.transfer.dirty_copy import BlockCopy, BlockMap, copy_blocks, ssh_wrap  # noqa: E402
from bhype_core.transfer.dirty_copy import manifest_digest as block_manifest_digest  # noqa: E402

__all__ += [
    "BLOCKS_PREFIX", "BLOCK_MANIFEST_DIR", "BlockCopy", "BlockMap", "DirtyTracker", "Extent", "FinalChanges",
    "TrackingLost", "block_manifest_digest", "copy_blocks", "covering_blocks", "extent_bytes", "merge_extents",
    "ssh_wrap",
]  # fmt: skip
