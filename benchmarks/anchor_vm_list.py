"""The anchor of ``bench_vm_list``: a bare SQL + JSON app (raw ASGI under uvicorn, no framework,
no authentication) answering ``GET /vms?limit=&after=&owner=`` with the same rows and the same
JSON as ``GET /api/v1/vms``. Its own process, started by the benchmark:
``python anchor_vm_list.py DATABASE_URL PORT``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from urllib.parse import parse_qs

import orjson
import uvicorn
from sqlalchemy.engine import make_url

COLUMNS = "id, name, uuid, owner, datastore, state, state_detail, spec, created, updated, host"


def connect(url: str):
    """A DB-API connection to ``url`` (sqlite:/// or mysql+pymysql://) and its placeholder."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        return sqlite3.connect(parsed.database, check_same_thread=False), "?"
    import pymysql

    return pymysql.connect(host=parsed.host or "127.0.0.1", port=parsed.port or 3306, user=parsed.username,
                           password=parsed.password or "", database=parsed.database,
                           unix_socket=parsed.query.get("unix_socket"), charset="utf8mb4", autocommit=True), "%s"


def when(value) -> datetime:
    return (datetime.fromisoformat(value) if isinstance(value, str) else value).replace(tzinfo=UTC)


def entry(row) -> dict:
    vm_id, name, uuid, owner, datastore, state, detail, spec_text, created, updated, host = row
    spec = orjson.loads(spec_text)
    cpus = spec.get("cpus")
    return {"id": vm_id, "name": name, "uuid": uuid, "owner": owner, "datastore": datastore, "state": state,
            "state_detail": detail, "template": spec.get("template"), "os_type": spec.get("os_type", "other"),
            "cpus": cpus.get("count", 1) if isinstance(cpus, dict) else int(cpus or 1),
            "memory": str(spec.get("memory", "")), "disks": len(spec.get("disks") or []),
            "description": spec.get("description", ""), "tags": list(spec.get("tags") or []),
            "created": when(created), "updated": when(updated), "host": host}


def make_app(url: str):
    connection, mark = connect(url)

    def page(query: dict[str, list[str]]) -> bytes:
        limit = int(query.get("limit", ["100"])[0])
        where, params = [], []
        if "owner" in query:
            where.append(f"owner = {mark}")
            params.append(query["owner"][0])
        if "after" in query:
            where.append(f"name > {mark}")
            params.append(query["after"][0])
        sql = (f"SELECT {COLUMNS} FROM core_vm" + (" WHERE " + " AND ".join(where) if where else "")
               + f" ORDER BY name LIMIT {limit + 1}")
        cursor = connection.cursor()
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        vms = [entry(row) for row in rows[:limit]]
        nxt = vms[-1]["name"] if len(rows) > limit else None
        return orjson.dumps({"vms": vms, "next": nxt}, option=orjson.OPT_UTC_Z)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = page(parse_qs(scope["query_string"].decode()))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


if __name__ == "__main__":
    uvicorn.run(make_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
