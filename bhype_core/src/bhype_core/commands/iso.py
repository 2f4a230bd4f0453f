"""``bhype iso list|fetch|upload|delete``: the ISO library via the API.

``upload`` streams the file as the request body with its SHA-256, so the server refuses a
corrupted transfer; ``fetch`` has the worker download it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bhype_core.commands.api_client import ApiError
from bhype_core.commands.plugins import format_table
from bhype_core.commands.switch import follow
from bhype_core.commands.template import connection_options
from bhype_core.commands.vm_client import api_from, bhype_error
from bhype_core.errors import BhypeError, ValidationErrors
from bhype_core.registry import CliCommand

UPLOAD_TIMEOUT = 3600.0


def iso_list(args: argparse.Namespace) -> int:
    isos = api_from(args).request("GET", "/api/v1/isos", datastore=args.datastore)["isos"]
    if args.json:
        print(json.dumps(isos, indent=2))
        return 0
    if not isos:
        print("no ISOs")
        return 0
    rows = [[i["name"], str(i["size"]), (i["sha256"] or "unknown")[:16], i["source"] or "-"] for i in isos]
    print(format_table(rows, ["NAME", "SIZE", "SHA256", "SOURCE"]))
    return 0


def iso_fetch(args: argparse.Namespace) -> int:
    api = api_from(args)
    name = args.name or Path(urllib.parse.urlsplit(args.url).path).name
    body = {"url": args.url, "name": name, "sha256": args.sha256, "datastore": args.datastore}
    if args.sha512:
        body["sha512"] = args.sha512
    return follow(api, api.request("POST", "/api/v1/isos/fetch", body), args, name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def iso_upload(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ValidationErrors([("file", f"{path} is not a file")])
    api = api_from(args)
    name = args.name or path.name
    query = {"sha256": _sha256(path)}
    if args.datastore:
        query["datastore"] = args.datastore
    url = f"{api.base_url}/api/v1/isos/{urllib.parse.quote(name)}?{urllib.parse.urlencode(query)}"
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        request = urllib.request.Request(url, data=handle, method="PUT")  # urllib streams a file body
        request.add_header("Content-Type", "application/octet-stream")
        request.add_header("Content-Length", str(size))
        if api.token:
            request.add_header("Authorization", f"Bearer {api.token}")
        try:
            with urllib.request.urlopen(request, timeout=UPLOAD_TIMEOUT) as answer:
                accepted: dict[str, Any] = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                decoded = json.loads(raw) if raw else {}
            except ValueError:
                decoded = {}
            message = (decoded.get("error") or {}).get("message") or f"HTTP {exc.code}"
            raise bhype_error(ApiError(exc.code, message, decoded)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise BhypeError(f"cannot reach {api.base_url}: {getattr(exc, 'reason', exc)}") from None
    return follow(api, accepted, args, name)


def iso_delete(args: argparse.Namespace) -> int:
    api = api_from(args)
    accepted = api.request("DELETE", f"/api/v1/isos/{urllib.parse.quote(args.name)}", datastore=args.datastore)
    return follow(api, accepted, args, args.name)


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype iso`` sub-commands."""
    sub = parser.add_subparsers(dest="iso_command", metavar="COMMAND", required=True)

    def add(name: str, handler: Any, help: str, wait: bool = True) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help)
        command.add_argument("--datastore", help="datastore (default: vm.default_datastore)")
        if wait:
            command.add_argument("--wait", action="store_true", help="follow the task until it ends")
        connection_options(command)
        command.set_defaults(iso_handler=handler)
        return command

    listing = add("list", iso_list, "the ISOs of a datastore", wait=False)
    listing.add_argument("--json", action="store_true", help="print JSON")
    fetch = add("fetch", iso_fetch, "download an ISO from an http(s) URL (a task)")
    fetch.add_argument("url")
    fetch.add_argument("--name", help="file name in the library (default: the URL's last part)")
    fetch.add_argument("--sha256", help="expected SHA-256 (strongly advised)")
    fetch.add_argument("--sha512", help="expected SHA-512 (Debian and FreeBSD publish these)")
    upload = add("upload", iso_upload, "upload a local ISO file (checksummed)")
    upload.add_argument("file")
    upload.add_argument("--name", help="file name in the library (default: the file's)")
    delete = add("delete", iso_delete, "delete an ISO no VM attaches")
    delete.add_argument("name")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen sub-command."""
    return args.iso_handler(args)


def command() -> CliCommand:
    """The ``bhype iso`` command record."""
    return CliCommand(name="iso", help="manage the ISO library", configure=configure, run=run)
