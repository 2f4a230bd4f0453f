"""The ZFS step of ``bhype host init`` (only when asked): bHype's datasets on a pool, and the
pool itself on given disks only with an explicit flag.

Read (reference freebsd-host.md 6.1–6.3):
- ``zpool list -Hp -o name,health`` (zpool-list(8)): one TAB-separated line per imported pool.
- ``zfs list -Hp -o name,type,org.bhype:role -t filesystem,volume -d 1 ROOT`` (zfs-list(8),
  zfsprops(7) user properties print ``-`` when unset): the root and its children; a missing
  root exits 1 with ``cannot open 'ROOT': dataset does not exist`` on stderr.
Applied with ``zfs create -p -o prop=value`` (zfs-create(8)), ``zfs set`` (zfs-set(8)) and, with
``--zfs-create-pool`` only, ``zpool create`` (zpool-create(8): without ``-f`` it refuses a disk
that is in use) after gpart(8) GPT labels on FreeBSD. The layout is the ZFS plugin's
(``<pool>/<root>/{vms,isos,templates}``, its ``pool_init`` and docs): the same names and
properties, so ``zfs.init_pool --adopt`` later finds nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from bhype_core.hostinit.accounts import Ask
from bhype_core.hostinit.plan import Change, Step

ROOT_PROPERTIES = {"compression": "lz4", "atime": "off"}  # zfsprops(7)
CHILDREN = {"vms": {}, "isos": {"recordsize": "1M"}, "templates": {}}  # ISOs: large sequential files
ROLE_PROPERTY = "org.bhype:role"  # the ZFS plugin's mark of its root dataset
LAYOUTS = {"single": 1, "mirror": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}  # zpoolconcepts(7)
PAGES = "zpool-list(8), zfs-list(8), zfs-create(8)"


@dataclass(frozen=True)
class ZfsRequest:
    """What the admin asked for: ``--zfs-pool``, ``--zfs-dataset``, and for a new pool
    ``--zfs-create-pool --zfs-disk DEV… [--zfs-layout]``."""

    pool: str
    root: str = "bhype"
    disks: tuple[str, ...] = ()
    layout: str = "mirror"
    create_pool: bool = False

    @property
    def root_dataset(self) -> str:
        return f"{self.pool}/{self.root}"

    def check(self) -> list[str]:
        """Problems with the request itself (nothing is asked of the host then)."""
        problems = []
        if not self.pool or "/" in self.pool or any(c.isspace() for c in self.pool):
            problems.append(f"--zfs-pool {self.pool!r} is not a pool name")
        parts = self.root.split("/")
        if not self.root or any(p in ("", ".", "..") or any(c.isspace() or c == "@" for c in p) for p in parts):
            problems.append(f"--zfs-dataset {self.root!r} is not a dataset path below the pool")
        if self.disks and not self.create_pool:
            problems.append("--zfs-disk is only used with --zfs-create-pool (a new pool on those disks)")
        if self.create_pool:
            if self.layout not in LAYOUTS:
                problems.append(f"--zfs-layout must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
            elif len(self.disks) < LAYOUTS[self.layout] or (self.layout == "single" and len(self.disks) != 1):
                problems.append(f"layout {self.layout} needs {LAYOUTS[self.layout]} disk(s) or more, "
                                f"got {len(self.disks)} (--zfs-disk)")
            for disk in self.disks:
                if not disk.startswith("/dev/") or any(c.isspace() for c in disk):
                    problems.append(f"--zfs-disk {disk!r} must be a device path under /dev/")
            if len(set(self.disks)) != len(self.disks):
                problems.append("a disk is named twice (--zfs-disk)")
        return problems


def pool_query() -> list[str]:
    """zpool-list(8): imported pools and their health, parsable."""
    return ["zpool", "list", "-Hp", "-o", "name,health"]


def dataset_query(root_dataset: str) -> list[str]:
    """zfs-list(8): the root and its direct children with bHype's role mark (options first:
    FreeBSD's getopt does not reorder, reference 6.1)."""
    return ["zfs", "list", "-Hp", "-o", f"name,type,{ROLE_PROPERTY}", "-t", "filesystem,volume", "-d", "1",
            root_dataset]


def parse_pools(stdout: str) -> dict[str, str]:
    """``name<TAB>health`` lines (zpool-list(8) ``-H``) → {pool: health}."""
    pools = {}
    for line in stdout.splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and fields[0]:
            pools[fields[0]] = fields[1]
    return pools


def parse_datasets(stdout: str) -> dict[str, tuple[str, str]]:
    """``name<TAB>type<TAB>role`` lines (zfs-list(8) ``-H``) → {name: (type, role)}."""
    found = {}
    for line in stdout.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[0]:
            found[fields[0]] = (fields[1], fields[2])
    return found


def create_argv(dataset: str, properties: dict[str, str]) -> tuple[str, ...]:
    """``zfs create -p [-o prop=value]… dataset`` (zfs-create(8); ``-p`` makes missing parents of a
    nested root such as ``vm/bhype`` and succeeds on a dataset that exists meanwhile)."""
    options = [word for key, value in properties.items() for word in ("-o", f"{key}={value}")]
    return ("zfs", "create", "-p", *options, dataset)


def pool_argvs(platform: str, request: ZfsRequest) -> list[tuple[str, ...]]:
    """New pool: on FreeBSD a GPT with one labelled freebsd-zfs partition per disk (gpart(8),
    reference 6.2) and the pool from ``gpt/<label>``; on Linux zpool-create(8) labels whole
    disks itself. ashift=12 and lz4/atime=off on the pool's root file system (zpoolprops(7))."""
    argvs: list[tuple[str, ...]] = []
    vdevs = list(request.disks)
    if platform == "freebsd":
        vdevs = []
        for index, disk in enumerate(request.disks):
            geom, label = disk.removeprefix("/dev/"), f"{request.pool}-{index}"
            argvs += [("gpart", "create", "-s", "gpt", geom),
                      ("gpart", "add", "-t", "freebsd-zfs", "-a", "1m", "-l", label, geom)]
            vdevs.append(f"gpt/{label}")
    layout = () if request.layout == "single" else (request.layout,)
    argvs.append(("zpool", "create", "-o", "ashift=12", "-O", "compression=lz4", "-O", "atime=off",
                  request.pool, *layout, *vdevs))
    return argvs


def plan_zfs(platform: str, request: ZfsRequest, ask: Ask) -> Step:
    """The pool is imported (or created on the named disks when asked) and holds bHype's root
    dataset, marked as bHype's, with its three children."""
    name = f"ZFS datasets on {request.pool}"
    wrong = request.check()
    if wrong:
        return Step(name, PAGES, problems=tuple(wrong))
    changes: list[Change] = []
    notes: list[str] = []
    answer = ask(pool_query())
    if answer.returncode != 0:
        return Step(name, PAGES, problems=("zpool list failed: is ZFS loaded (zfs_load/kld_list zfs, "
                                           "modprobe zfs)?",))
    pools = parse_pools(answer.stdout)
    existing: dict[str, tuple[str, str]] = {}
    if request.pool in pools:
        if request.create_pool:
            return Step(name, PAGES, problems=(f"pool {request.pool} exists: drop --zfs-create-pool to use it",))
        health = pools[request.pool]
        notes.append(f"pool {request.pool} is imported ({health})")
        if health != "ONLINE":
            notes.append(f"pool {request.pool} is {health}: see zpool status {request.pool}")
        listed = ask(dataset_query(request.root_dataset))
        existing = parse_datasets(listed.stdout) if listed.returncode == 0 else {}
    elif request.create_pool:
        changes.append(Change(f"create {request.layout} pool {request.pool} on {', '.join(request.disks)}",
                              tuple(pool_argvs(platform, request)),
                              "gpart(8), zpool-create(8)" if platform == "freebsd" else "zpool-create(8)"))
    else:
        return Step(name, PAGES, notes=tuple(notes), problems=(
            f"pool {request.pool} is not imported: import it (zpool import {request.pool}) or create it on "
            "blank disks with --zfs-create-pool --zfs-disk /dev/… (zpool-create(8))",))
    root = request.root_dataset
    if root not in existing:
        changes.append(Change(f"create bHype's root dataset {root}",
                              (create_argv(root, {**ROOT_PROPERTIES, ROLE_PROPERTY: "root"}),), "zfs-create(8)"))
    elif existing[root][0] != "filesystem":
        return Step(name, PAGES, tuple(changes), tuple(notes),
                    (f"{root} is a {existing[root][0]}, not a file system: choose another --zfs-dataset",))
    elif existing[root][1] != "root":
        changes.append(Change(f"mark {root} as bHype's ({ROLE_PROPERTY}=root)",
                              (("zfs", "set", f"{ROLE_PROPERTY}=root", root),), "zfs-set(8)"))
    else:
        notes.append(f"{root} is bHype's root dataset")
    problems = []
    for child, properties in CHILDREN.items():
        dataset = f"{root}/{child}"
        if dataset not in existing:
            changes.append(Change(f"create {dataset}", (create_argv(dataset, properties),), "zfs-create(8)"))
        elif existing[dataset][0] != "filesystem":
            problems.append(f"{dataset} is a {existing[dataset][0]}, not a file system")
        else:
            notes.append(f"{dataset} exists")
    notes.append(f'bhype.toml: [zfs] pool = "{request.pool}", root = "{request.root}" '
                 f'and a zfs datastore on {root} (docs/install-freebsd.md)')
    return Step(name, PAGES, tuple(changes), tuple(notes), tuple(problems))
