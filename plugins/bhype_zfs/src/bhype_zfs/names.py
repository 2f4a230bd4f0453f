"""Checking dataset, snapshot, hold-tag and user-property names before they reach an argv."""

from __future__ import annotations

import re

from bhype_core.plugin_api import ValidationErrors
from bhype_zfs.settings import check_pool_name

# zfs(8) "Dataset names": alphanumerics plus "_", "-", ".", ":" (and space, which bHype
# refuses: it only causes quoting trouble in logs and paths). Components are separated by "/".
_COMPONENT = re.compile(r"[A-Za-z0-9_.:][A-Za-z0-9_.:-]*")
# zfs-snapshot(8): the part after "@" follows the same character rules.
_SNAPSHOT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}")
# zfsprops(7) "User Properties": a colon, lowercase letters, digits and ": - . _", at most 256
# characters, not starting with "-".
_USER_PROPERTY = re.compile(r"[a-z0-9_.:][a-z0-9_.:-]{0,255}")
# zfs-hold(8): a tag is any string but bHype keeps it argv- and log-friendly.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
MAX_NAME = 255  # ZFS_MAX_DATASET_NAME_LEN - 1
MAX_USER_VALUE = 8192  # zfsprops(7): user property values are at most 8192 bytes


def check_dataset(name: object, field: str = "dataset") -> str:
    """Return ``name`` when it is a valid filesystem or volume name (``pool/a/b``).

    :raises ValidationErrors: naming ``field``: empty, too long, a bad pool part, an empty
        component (``a//b``), ``.``/``..`` or characters zfs(8) does not allow.
    """
    if not isinstance(name, str) or not name:
        raise ValidationErrors([(field, "must be a dataset name such as tank/bhype")])
    if len(name) > MAX_NAME:
        raise ValidationErrors([(field, f"is longer than {MAX_NAME} characters")])
    pool, *rest = name.split("/")
    try:
        check_pool_name(pool)
    except ValueError as exc:
        raise ValidationErrors([(field, f"pool part {pool!r}: {exc}")]) from None
    for component in rest:
        if component in ("", ".", "..") or not _COMPONENT.fullmatch(component):
            raise ValidationErrors([(
                field,
                f"{name!r}: each part after the pool uses letters, digits, '_', '-', '.', ':' "
                "(zfs(8) dataset names), no empty, '.' or '..' parts",
            )])
    return name


def check_snapshot_name(name: object, field: str = "snapshot") -> str:
    """Return the short snapshot name (the part after ``@``) when zfs-snapshot(8) accepts it.

    :raises ValidationErrors: naming ``field``.
    """
    if not isinstance(name, str) or not _SNAPSHOT.fullmatch(name):
        raise ValidationErrors([(
            field,
            f"{name!r} is not a snapshot name: letters, digits, '_', '-', '.', ':' "
            "starting with a letter, digit or '_' (at most 200 characters)",
        )])
    return name


def check_full_snapshot(name: object, field: str = "snapshot") -> tuple[str, str]:
    """Split ``dataset@snap`` into its checked parts.

    :raises ValidationErrors: naming ``field``.
    """
    if not isinstance(name, str) or name.count("@") != 1:
        raise ValidationErrors([(field, f"{name!r} must look like dataset@snapshot")])
    dataset, snap = name.split("@")
    return check_dataset(dataset, field), check_snapshot_name(snap, field)


def check_user_property(name: object, field: str = "property") -> str:
    """Return ``name`` when it is a user property (``org.bhype:uuid``), per zfsprops(7).

    :raises ValidationErrors: naming ``field``.
    """
    if not isinstance(name, str) or ":" not in name or not _USER_PROPERTY.fullmatch(name) or name.startswith("-"):
        raise ValidationErrors([(
            field,
            f"{name!r} is not a user property: lowercase letters, digits, ':', '-', '.', '_', "
            "with a colon (module:name), at most 256 characters (zfsprops(7))",
        )])
    return name


def check_user_value(value: object, field: str = "value") -> str:
    """Return ``value`` when it fits a user property (text without NUL, at most 8192 bytes)."""
    if not isinstance(value, str) or "\0" in value or "\n" in value or "\t" in value:
        raise ValidationErrors([(field, "must be a single line of text (no TAB or newline: -H output splits on them)")])
    if len(value.encode()) > MAX_USER_VALUE:
        raise ValidationErrors([(field, f"is longer than {MAX_USER_VALUE} bytes (zfsprops(7))")])
    return value


def check_tag(tag: object, field: str = "tag") -> str:
    """Return a hold tag (zfs-hold(8)) when it is a plain word bHype can log and pass on."""
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise ValidationErrors([(field, f"{tag!r}: use letters, digits, '_', '-', '.', ':' (at most 64)")])
    return tag


def child(parent: str, *parts: str) -> str:
    """``parent/part/...``, each part checked as one dataset name component."""
    return check_dataset("/".join((parent, *parts)))
