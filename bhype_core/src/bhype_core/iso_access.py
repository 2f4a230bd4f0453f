"""Who may change which ISO of the library: the object check (``TaskKind.authorize``) of
``iso.delete``. Every user may list, fetch and upload ISOs; deleting one is for admins and
for whoever added it (the same rule ``DELETE /api/v1/isos/{name}`` answers with)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bhype_core.errors import Forbidden, ValidationErrors

if TYPE_CHECKING:
    from bhype_core.auth.principal import Principal


def may_delete_iso(principal: Principal, arguments: dict[str, Any], runtime: Any) -> None:
    """``authorize`` of ``iso.delete``: an admin, or the user the ISO's record names as
    ``added_by`` (an ISO added by hand, with no record, is the admins').

    :raises NotFound: no such ISO (or datastore).
    :raises Forbidden: someone else's ISO.
    """
    if principal.is_admin:
        return
    from bhype_core.isos import read_info
    from bhype_core.vm.services import open_datastore

    name, datastore = arguments.get("name"), arguments.get("datastore")
    if not isinstance(name, str) or (datastore is not None and not isinstance(datastore, str)):
        raise ValidationErrors([("name", "must be an ISO name")])
    info = read_info(open_datastore(runtime, datastore), name)
    if info.added_by != principal.name:
        raise Forbidden("only admins, or whoever added the ISO, may delete it")
