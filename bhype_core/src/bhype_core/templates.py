"""OS templates: shipped and admin TOML files that give a new VM its defaults.

A template file ``<name>.toml`` holds ``title``, ``os_type``, ``cloud_init`` (whether the
guest images read a NoCloud seed), ``notes``, ``[defaults.disk]``/``[defaults.nic]`` (keys
every disk/NIC gets unless it sets them, also disks added later through overrides) and
``[spec]``: VM spec data without the per-VM fields (name, uuid, owner, MACs), and ``[image]``:
the distribution's official cloud image and its checksum file (:mod:`bhype_core.cloud_images`). Shipped files
live in ``bhype_core/templates/``; an admin directory adds more, and an admin file with a
shipped name replaces the shipped one.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from bhype_core.cloud_images import CloudImage, parse_image
from bhype_core.errors import NotFound, ValidationErrors
from bhype_core.spec import NAME_RE, SpecContext, VMSpec, validate_spec

TEMPLATE_KEYS = {"title", "os_type", "cloud_init", "notes", "defaults", "spec", "image"}
PER_VM_KEYS = ("name", "uuid", "owner", "template", "os_type")


@dataclass(frozen=True)
class Template:
    """One parsed template; ``source`` is ``builtin`` or ``admin``."""

    name: str
    title: str
    os_type: str
    cloud_init: bool
    notes: str
    spec: Mapping[str, Any]
    disk_defaults: Mapping[str, Any] = field(default_factory=dict)
    nic_defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = "builtin"
    path: str = ""
    image: CloudImage | None = None

    def spec_data(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """This template's spec data with ``overrides`` applied (see :func:`merge_spec_data`)."""
        return merge_spec_data(self, overrides or {})

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for ``GET /api/v1/templates`` and ``bhype template list``."""
        return {
            "name": self.name,
            "title": self.title,
            "os_type": self.os_type,
            "cloud_init": self.cloud_init,
            "notes": self.notes,
            "source": self.source,
            "image": self.image.to_dict() if self.image else None,
            "defaults": {k: v for k, v in self.spec_data().items() if k != "template"},
        }


def _deep_merge(base: Any, override: Any) -> Any:
    # Mappings merge key by key; anything else (lists included) is replaced: overriding
    # `disks` gives exactly the disks asked for, each completed by [defaults.disk].
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in override.items():
            merged[key] = _deep_merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def merge_spec_data(template: Template, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Template spec + caller overrides -> raw spec data for :func:`validate_spec`.

    :raises ValidationErrors: overrides that are not an object, that set ``template`` to
        another template, or that carry cloud-init data for a template without cloud-init.
    """
    errors = ValidationErrors()
    if not isinstance(overrides, Mapping):
        raise ValidationErrors([("", "overrides must be an object")])
    if overrides.get("template", template.name) != template.name:
        errors.add("template", f"is set by the template used ({template.name})")
    if overrides.get("cloud_init") is not None and not template.cloud_init:
        errors.add("cloud_init", f"template {template.name} does not support cloud-init")
    errors.raise_if_any()
    data = _deep_merge(dict(template.spec), dict(overrides))
    data["template"] = template.name
    data.setdefault("os_type", template.os_type)
    for key, defaults in (("disks", template.disk_defaults), ("nics", template.nic_defaults)):
        items = data.get(key)
        if isinstance(items, list):
            data[key] = [{**defaults, **item} if isinstance(item, Mapping) else item for item in items]
    return data


def parse_template(name: str, text: str, *, source: str = "builtin", path: str = "") -> Template:
    """Parse and check one template file's text; the spec must validate as a VM of its own.

    :raises ValidationErrors: with paths inside the file (``spec.disks.0.size``).
    """
    errors = ValidationErrors()
    if not NAME_RE.match(name):
        raise ValidationErrors([("name", f"invalid template name {name!r} (from the file name)")])
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationErrors([("", f"invalid TOML: {exc}")]) from None
    for key in sorted(set(raw) - TEMPLATE_KEYS):
        errors.add(key, "is not a known template key")
    for key, kind in (("title", str), ("os_type", str), ("notes", str), ("cloud_init", bool)):
        if key in raw and not isinstance(raw[key], kind):
            errors.add(key, f"must be a {kind.__name__}")
    spec = raw.get("spec", {})
    defaults = raw.get("defaults", {})
    if not isinstance(spec, dict):
        errors.add("spec", "must be a table")
    if not isinstance(defaults, dict) or set(defaults) - {"disk", "nic"}:
        errors.add("defaults", "may only hold [defaults.disk] and [defaults.nic] tables")
    errors.raise_if_any()
    for key in PER_VM_KEYS:
        if key in spec:
            errors.add(f"spec.{key}", "is per VM and cannot be set by a template")
    for index, nic in enumerate(spec.get("nics") or []):
        if isinstance(nic, dict) and "mac" in nic:
            errors.add(f"spec.nics.{index}.mac", "is per VM and cannot be set by a template")
    image = None
    if "image" in raw:
        try:
            image = parse_image(raw["image"])
        except ValidationErrors as exc:
            errors.extend(exc)
    errors.raise_if_any()
    template = Template(
        name=name,
        title=raw.get("title", name),
        os_type=raw.get("os_type", "other"),
        cloud_init=raw.get("cloud_init", False),
        notes=raw.get("notes", ""),
        spec=spec,
        disk_defaults=defaults.get("disk", {}),
        nic_defaults=defaults.get("nic", {}),
        source=source,
        path=path,
        image=image,
    )
    try:
        validate_spec({**template.spec_data(), "name": "template-check"})
    except ValidationErrors as exc:
        checked = ValidationErrors()
        for error in exc.errors:
            checked.add("os_type" if error.path == "os_type" else f"spec.{error.path}", error.message)
        raise checked from None
    return template


def builtin_templates_dir() -> Traversable:
    """The templates shipped inside the bhype_core package."""
    return files("bhype_core") / "templates"


@dataclass
class TemplateCatalog:
    """Loaded templates by name, plus admin files that failed to load (shown, never hidden)."""

    templates: dict[str, Template] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Template names, sorted."""
        return sorted(self.templates)

    def list(self) -> list[Template]:
        """Templates sorted by name."""
        return [self.templates[name] for name in self.names()]

    def get(self, name: str) -> Template:
        """The template called ``name``.

        :raises NotFound: naming the template.
        """
        try:
            return self.templates[name]
        except KeyError:
            raise NotFound(f"no template named {name!r}") from None

    def build_spec(
        self, name: str, overrides: Mapping[str, Any], context: SpecContext | None = None
    ) -> VMSpec:
        """Create a validated spec from template ``name`` plus ``overrides``.

        An unknown template is reported as a validation error on ``template``.
        """
        if name not in self.templates:
            raise ValidationErrors([("template", f"no template named {name!r}")])
        return validate_spec(self.templates[name].spec_data(overrides), context)


def load_templates(admin_dir: Path | str | None = None) -> TemplateCatalog:
    """Load the shipped templates, then every ``*.toml`` in ``admin_dir`` (if it exists).

    A broken shipped template raises (it is a bug); a broken admin file is recorded in
    ``catalog.errors`` under its path with the problem, and the rest still load.
    """
    catalog = TemplateCatalog()
    for entry in sorted(builtin_templates_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            catalog.templates[name] = parse_template(name, entry.read_text(encoding="utf-8"))
    if admin_dir is not None and Path(admin_dir).is_dir():
        for path in sorted(Path(admin_dir).glob("*.toml")):
            try:
                text = path.read_text(encoding="utf-8")
                catalog.templates[path.stem] = parse_template(path.stem, text, source="admin", path=str(path))
            except (OSError, UnicodeDecodeError, ValidationErrors) as exc:
                catalog.errors[str(path)] = str(exc)
    return catalog
