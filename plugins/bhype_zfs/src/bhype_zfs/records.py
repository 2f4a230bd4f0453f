"""The spec a clone gets: the source's with a new identity.

Clones and VMs found on an imported pool get their ``core_vm`` record through the core's
:func:`bhype_core.plugin_api.register_vm`, which validates the spec against this host and fires
``bhype_vm_before_register``/``bhype_vm_after_register``, so other plugins see them appear.
"""

from __future__ import annotations

import copy
from typing import Any

# cloud-init NoCloud meta-data keys that name one machine: a clone must not keep them.
IDENTITY_META_DATA = ("instance-id", "local-hostname", "hostname")


def cloned_spec_data(source: dict[str, Any], name: str) -> dict[str, Any]:
    """The source VM's spec with a new identity: name ``name``; no UUID, NIC MACs or VNC
    password (validation generates new ones); cloud-init instance id and host name reset."""
    data = copy.deepcopy(source)
    data["name"] = name
    data.pop("uuid", None)
    for nic in data.get("nics") or []:
        if isinstance(nic, dict):
            nic.pop("mac", None)
    graphics = data.get("graphics")
    if isinstance(graphics, dict):
        graphics.pop("password", None)
    cloud_init = data.get("cloud_init")
    if isinstance(cloud_init, dict) and isinstance(cloud_init.get("meta_data"), dict):
        meta = cloud_init["meta_data"]
        for key in IDENTITY_META_DATA:
            meta.pop(key, None)
        meta["local-hostname"] = name
    return data
