"""vm-bhyve templates (``$vm_dir/.templates/*.conf``) as bHype admin templates, and back.

Import: each template is mapped key by key like a guest (:func:`~bhype_core.vmbhyve.mapping.map_guest`
with ``template=True``: ``diskN_size`` kept, no disk paths), its per-VM fields dropped (a
template has no name, UUID or MACs, bhype_core.templates ``PER_VM_KEYS``), and written as
``vmbhyve-<name>.toml`` in the admin templates directory (``vm.templates_dir``). The prefix keeps
an imported ``default`` or ``debian`` from replacing a shipped template of that name. A file of
that name which bHype did not write from the same config is left alone (action ``exists``).

Export: a bHype template's spec as a vm-bhyve template (``diskN_name="diskN.img"`` plus
``diskN_size``, as config.sample documents for templates, and no uuid or MAC lines).
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bhype_core.errors import ValidationErrors
from bhype_core.templates import PER_VM_KEYS, Template, parse_template
from bhype_core.vmbhyve.datastore import GuestConf
from bhype_core.vmbhyve.mapping import Unmapped, map_guest

PREFIX = "vmbhyve-"
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """One TOML value: JSON's string escapes are TOML basic-string escapes; tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def per_vm_losses(template: GuestConf) -> list[Unmapped]:
    """Keys a vm-bhyve template may hold that a bHype template cannot: per-VM identities, and
    the disk kind (a bHype disk is the kind its datastore makes)."""
    owner, losses = f"template {template.name}", []
    for key, value in template.conf.values.items():
        if not value:
            continue
        if key == "uuid" or re.fullmatch(r"network\d+_mac", key):
            losses.append(Unmapped(owner, key, value, "per VM: each VM made from the template gets its own"))
        elif re.fullmatch(r"disk\d+_dev", key) and value != "file":
            losses.append(Unmapped(owner, key, value, "a bHype disk is what its datastore makes (a zvol on a "
                                   "zfs datastore, a file on a directory one)"))
    return losses


def template_toml(template: GuestConf, spec: Mapping[str, Any], unmapped: list[Unmapped]) -> str:
    """The admin template file for one mapped vm-bhyve template."""
    data = copy.deepcopy({key: value for key, value in spec.items() if key not in PER_VM_KEYS and key != "description"})
    for nic in data.get("nics", []):
        nic.pop("mac", None)  # per VM (bhype_core.templates refuses a MAC in a template)
    if "graphics" in data:
        data["graphics"] = {k: v for k, v in data["graphics"].items() if k != "password"}  # a per-VM secret
    lines = [f"# Imported from vm-bhyve template {template.directory / (template.name + '.conf')}",
             f"title = {toml_value('vm-bhyve: ' + template.name)}",
             f"os_type = {toml_value(spec.get('os_type', 'other'))}"]
    if unmapped:
        notes = "Not carried over from vm-bhyve: " + "; ".join(f"{u.key}={u.value} ({u.reason})" for u in unmapped)
        lines.append(f"notes = {toml_value(notes)}")
    lines.append("")
    lines.append("[spec]")
    lines += [f"{toml_key(key)} = {toml_value(value)}" for key, value in data.items()]
    return "\n".join(lines) + "\n"


def plan_templates(templates: list[GuestConf], templates_dir: Path | None) -> list[dict[str, Any]]:
    """One row per vm-bhyve template: its bHype name, spec, file text, action (``create``,
    ``same`` when the file already holds this text, ``exists`` when another file has the name,
    ``refuse`` when the mapped spec is not a valid template) and what did not map
    (``unmapped``, :class:`~bhype_core.vmbhyve.mapping.Unmapped` rows)."""
    rows = []
    for template in templates:
        mapped = map_guest(template, template=True)
        name = PREFIX + template.name
        unmapped = mapped.unmapped + per_vm_losses(template)
        text = template_toml(template, mapped.spec, unmapped)
        row: dict[str, Any] = {"name": template.name, "bhype_name": name, "spec": mapped.spec, "text": text,
                               "action": "create", "reason": "", "file": "", "unmapped": unmapped}
        try:
            parse_template(name, text, source="admin")
        except ValidationErrors as exc:
            row["action"] = "refuse"
            row["reason"] = "; ".join(f"{e.path}: {e.message}" for e in exc.errors)
        if mapped.refused:
            row["action"], row["reason"] = "refuse", "; ".join(mapped.refused)
        if templates_dir is not None:
            target = templates_dir / f"{name}.toml"
            row["file"] = str(target)
            if row["action"] == "create" and (target.exists() or target.is_symlink()):
                same = target.is_file() and not target.is_symlink() and target.read_text() == text
                row["action"] = "same" if same else "exists"
                row["reason"] = "already imported" if same else f"{target} exists (not overwritten)"
        rows.append(row)
    return rows


def write_templates(rows: list[dict[str, Any]], templates_dir: Path) -> list[str]:
    """Write each ``create`` row's file (created, never replaced: O_EXCL, no symlink followed).

    :returns: the bHype names written.
    """
    written = []
    templates_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    for row in rows:
        if row["action"] != "create":
            continue
        target = templates_dir / f"{row['bhype_name']}.toml"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as handle:
            handle.write(row["text"])
        written.append(row["bhype_name"])
    return written


def export_template_conf(template: Template) -> tuple[str, list[str]]:
    """A bHype template as a vm-bhyve template's text, and notes on what it cannot carry."""
    from bhype_core.spec import validate_spec
    from bhype_core.units import format_size
    from bhype_core.vmbhyve.export import export_conf

    data = template.spec_data()
    spec = validate_spec({**data, "name": "template-export"})
    names = [f"disk{index}.img" for index in range(len(spec.disks))]
    text, notes = export_conf(spec, names)
    if template.os_type not in ("other", "freebsd"):  # freebsd: bhyveload says it
        notes.insert(0, f"os_type {template.os_type}: vm-bhyve 1.2+ has no guest OS key")
    kept = []
    for line in text.splitlines():
        key = line.split("=", 1)[0]
        if key in ("uuid", "vnc_password") or re.fullmatch(r"network\d+_mac", key):
            continue  # per VM: vm-bhyve generates them for each guest made from the template
        if re.fullmatch(r"disk\d+_dev", key):
            continue  # the default (a file in the guest's directory), not the export's "custom"
        kept.append(line)
        match = re.fullmatch(r"disk(\d+)_name", key)
        if match:
            index = int(match.group(1))
            raw_disk = (data.get("disks") or [{}])[index] if index < len(data.get("disks") or []) else {}
            size = raw_disk.get("size") if isinstance(raw_disk, Mapping) else None
            if size:
                kept.append(f'disk{index}_size="{format_size(size) if isinstance(size, int) else size}"')
    kept.insert(0, f'# bHype template {template.name} ({template.title})')
    return "\n".join(kept) + "\n", notes
