"""Debian packages for test guests: a private apt configuration, downloads and extraction.

Every apt call runs with its own sources list, state, lists and archive cache under one
directory (``-o Dir::Etc::sourcelist=…``, ``Dir::State``, ``Dir::Cache``; apt.conf(5)), so
adding bookworm-backports ``contrib`` for OpenZFS never touches the machine's apt setup. The
machine's ``apt.conf.d`` (proxy, validity settings) still applies.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bhype_core.host.runner import LocalRunner

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
ARCH = "amd64"
CLOUD_KERNEL_META = "linux-image-cloud-amd64"


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` line of sources.list(5): archive URI, suite, components."""

    uri: str
    suite: str
    components: tuple[str, ...] = ("main",)

    def line(self) -> str:
        """The sources.list line, signed by Debian's archive keyring."""
        return f"deb [arch={ARCH} signed-by={KEYRING}] {self.uri} {self.suite} {' '.join(self.components)}"


def bookworm_sources(backports_contrib: bool = False) -> list[AptSource]:
    """Debian 12 main, updates and security (the cloud kernel lives in bookworm-security);
    with ``backports_contrib`` also bookworm-backports ``contrib`` (zfs-dkms, zfsutils-linux).

    Mirrors come from ``$BHYPE_TEST_DEBIAN_MIRROR`` / ``$BHYPE_TEST_DEBIAN_SECURITY_MIRROR``.
    """
    mirror = os.environ.get("BHYPE_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("BHYPE_TEST_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    sources = [
        AptSource(mirror, "bookworm"),
        AptSource(mirror, "bookworm-updates"),
        AptSource(security, "bookworm-security"),
    ]
    if backports_contrib:
        sources.append(AptSource(mirror, "bookworm-backports", ("main", "contrib")))
    return sources


def parse_policy_candidate(text: str, package: str) -> str:
    """The ``Candidate:`` version in ``apt-cache policy PACKAGE`` output.

    :raises LookupError: the package is unknown (apt prints nothing) or has no candidate.
    """
    match = re.search(r"^\s+Candidate:\s*(\S+)\s*$", text, re.MULTILINE)
    if match is None or match.group(1) == "(none)":
        raise LookupError(f"Debian package {package} has no installable version in the configured archives")
    return match.group(1)


def parse_depends(text: str) -> list[str]:
    """Package names on the ``Depends:`` lines of ``apt-cache depends`` output (virtual
    packages, shown as ``<name>``, are skipped)."""
    names = []
    for match in re.finditer(r"^\s+\|?Depends:\s*(\S+)\s*$", text, re.MULTILINE):
        if not match.group(1).startswith("<"):
            names.append(match.group(1))
    return names


def parse_control(text: str) -> dict[str, str]:
    """The first stanza of deb822 control text (``apt-cache show``) as a dict; continuation
    lines are dropped (no caller needs multi-line fields)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t":
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cloud_kernel_abi(depends: Sequence[str]) -> str:
    """The kernel ABI name (``6.1.0-56-cloud-amd64``, what ``uname -r`` prints) from the
    dependencies of the ``linux-image-cloud-amd64`` meta package.

    :raises LookupError: no versioned ``linux-image-*-cloud-amd64`` dependency.
    """
    for name in depends:
        match = re.fullmatch(r"linux-image-(\d[\w.+~-]*-cloud-amd64)", name)
        if match:
            return match.group(1)
    raise LookupError(f"{CLOUD_KERNEL_META} depends on no versioned cloud kernel: {list(depends)}")


def deb_filename(package: str, version: str, arch: str = ARCH) -> str:
    """The file name ``apt-get download`` gives a package (the epoch colon escaped as ``%3a``)."""
    return f"{package}_{version.replace(':', '%3a')}_{arch}.deb"


@dataclass(frozen=True)
class ArchiveFile:
    """One file of a resolved closure, as ``apt-get --print-uris`` names it."""

    uri: str
    filename: str
    size: int
    # (hashlib name, hex digest) when apt printed one; apt 2.6 prints ``MD5Sum:`` or nothing.
    checksum: tuple[str, str] | None = None

    def is_valid(self, path: Path) -> bool:
        """``path`` exists with this size and (when apt gave one) this checksum."""
        try:
            if path.stat().st_size != self.size:
                return False
        except FileNotFoundError:
            return False
        if self.checksum is None:
            return True
        algorithm, expected = self.checksum
        digest = hashlib.new(algorithm)
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest() == expected


# apt's hash field names (apt-get(8) --print-uris) → hashlib's.
_HASHES = {"MD5SUM": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


def parse_print_uris(text: str) -> list[ArchiveFile]:
    """The files in ``apt-get --print-uris`` output: one line per file,
    ``'URI' FILENAME SIZE [HASH]`` (apt-get(8); apt 2.6 prints ``MD5Sum:<hex>`` or nothing)."""
    files = []
    for match in re.finditer(r"^'(\S+)' (\S+\.deb) (\d+) ?(\S*)\s*$", text, re.MULTILINE):
        uri, filename, size, field = match.groups()
        name, _, value = field.partition(":")
        algorithm = _HASHES.get(name.upper())
        checksum = (algorithm, value.lower()) if algorithm and value else None
        files.append(ArchiveFile(uri, filename, int(size), checksum))
    return files


class DebianArchive:
    """A private apt configuration under ``root`` (``sources.list``, ``state/``, ``cache/``)."""

    def __init__(self, root: Path, sources: Sequence[AptSource]) -> None:
        self.root = root
        self.sources = list(sources)
        self.runner = LocalRunner(default_timeout=600)
        self._updated = False

    def options(self) -> list[str]:
        """The ``-o`` options that point apt at this private configuration (apt.conf(5))."""
        settings = {
            "Dir::Etc::sourcelist": str(self.root / "sources.list"),
            "Dir::Etc::sourceparts": str(self.root / "sources.list.d"),
            "Dir::Etc::preferences": str(self.root / "preferences"),
            "Dir::Etc::preferencesparts": str(self.root / "preferences.d"),
            "Dir::State": str(self.root / "state"),
            # An empty dpkg status: resolve as for an empty system, not this machine.
            "Dir::State::status": str(self.root / "state" / "status"),
            "Dir::Cache": str(self.root / "cache"),
            "Dir::Cache::archives": str(self.root / "cache" / "archives"),
            "APT::Architecture": ARCH,
            "APT::Architectures": ARCH,
            # Downloads land in directories only root can write to: no _apt sandbox warning.
            "APT::Sandbox::User": "root",
        }
        return [part for key, value in settings.items() for part in ("-o", f"{key}={value}")]

    def update(self) -> None:
        """Write the sources list and fetch the package lists (once per instance)."""
        if self._updated:
            return
        for directory in ("sources.list.d", "preferences.d", "state/lists/partial", "cache/archives/partial"):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        (self.root / "state" / "status").touch()
        (self.root / "sources.list").write_text("".join(source.line() + "\n" for source in self.sources))
        # --error-on=any: an unreachable archive is an error, not a warning with exit status 0.
        self.runner.run(["apt-get", *self.options(), "-q", "--error-on=any", "update"], timeout=600)
        self._updated = True

    def candidate(self, package: str) -> str:
        """The version apt would download for ``package`` now."""
        self.update()
        result = self.runner.run(["apt-cache", *self.options(), "policy", package], timeout=120)
        return parse_policy_candidate(result.stdout, package)

    def show(self, package: str) -> dict[str, str]:
        """The control fields of ``package``'s candidate version (``apt-cache show``).

        :raises LookupError: apt knows no such package.
        """
        self.update()
        argv = ["apt-cache", *self.options(), "show", "--no-all-versions", package]
        result = self.runner.run(argv, timeout=120, check=False)
        fields = parse_control(result.stdout)
        if result.returncode != 0 or "Version" not in fields:
            raise LookupError(f"Debian package {package} is not in the configured archives")
        return fields

    def depends(self, package: str) -> list[str]:
        """The real packages ``package``'s candidate version depends on."""
        self.update()
        result = self.runner.run(["apt-cache", *self.options(), "depends", package], timeout=120)
        return parse_depends(result.stdout)

    def current_cloud_kernel(self) -> str:
        """The ABI of the cloud kernel Debian ships *today* (old ones vanish after each
        security update, so this is resolved at build time, never hard-coded)."""
        return cloud_kernel_abi(self.depends(CLOUD_KERNEL_META))

    def download(self, packages: Iterable[str], dest: Path) -> dict[str, Path]:
        """``apt-get download`` each package's candidate into ``dest`` unless that exact file is
        already there; return ``{package: .deb path}``."""
        dest.mkdir(parents=True, exist_ok=True)
        wanted: dict[str, Path] = {}
        for package in packages:
            fields = self.show(package)
            wanted[package] = dest / deb_filename(package, fields["Version"], fields["Architecture"])
        missing = [name for name, path in wanted.items() if not path.is_file()]
        if missing:
            self.runner.run(["apt-get", *self.options(), "-q", "download", *missing], timeout=900, cwd=dest)
        for name, path in wanted.items():
            if not path.is_file():
                raise LookupError(f"apt-get download did not produce {path.name} for {name}")
        return wanted

    def closure(self, packages: Sequence[str]) -> list[ArchiveFile]:
        """Every ``.deb`` that installing ``packages`` (no recommends) on an empty system needs,
        whatever the archive cache already holds.

        ``apt-get --print-uris`` lists only the files missing from ``Dir::Cache::archives``
        (issue 13: a cache filled by an earlier, unfinished build made it print nothing, and
        the ZFS image lost its whole userland). So the solution is printed against an empty,
        private archive directory: apt then lists the complete closure.
        """
        self.update()
        with tempfile.TemporaryDirectory(prefix="apt-resolve-", dir=self.root) as empty:
            (Path(empty) / "partial").mkdir()
            argv = [
                "apt-get", *self.options(), "-o", f"Dir::Cache::archives={empty}",
                "-q", "-y", "--no-install-recommends", "--download-only", "--print-uris", "install", *packages,
            ]  # fmt: skip
            result = self.runner.run(argv, timeout=600)
        files = parse_print_uris(result.stdout)
        if not files:
            raise LookupError(f"apt resolved no packages for {list(packages)}: {result.stdout[-500:]!r}")
        return files

    def download_closure(self, packages: Sequence[str]) -> list[Path]:
        """Download ``packages`` and every package they depend on (no recommends), as for an
        empty system, into the private archive cache; return the ``.deb`` files.

        The closure comes from :meth:`closure` (independent of the cache); a cached file is
        kept when its size and SHA-256 match apt's index, anything else is fetched again.
        Callers hold the cache's ``apt`` lock (:func:`bhype_testimages.guest_cache.build_lock`).
        """
        files = self.closure(packages)
        archives = self.root / "cache" / "archives"
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        stale = [file for file in files if not file.is_valid(archives / file.filename)]
        for file in stale:
            (archives / file.filename).unlink(missing_ok=True)
        if stale:
            args = ["apt-get", *self.options(), "-q", "-y", "--no-install-recommends", "--download-only"]
            self.runner.run([*args, "install", *packages], timeout=1800)
        debs = [archives / file.filename for file in files]
        missing = [file.filename for file in files if not file.is_valid(archives / file.filename)]
        if missing:
            raise LookupError(f"apt-get --download-only left out {missing}")
        return debs


def extract(deb: Path, dest: Path) -> None:
    """Unpack a ``.deb``'s files into ``dest`` with ``dpkg -x`` (no maintainer scripts run)."""
    dest.mkdir(parents=True, exist_ok=True)
    LocalRunner().run(["dpkg-deb", "-x", str(deb), str(dest)], timeout=600)


def deb_field(deb: Path, field: str) -> str:
    """One control field of a ``.deb`` (``dpkg-deb -f``), e.g. ``Version``."""
    return LocalRunner().run(["dpkg-deb", "-f", str(deb), field], timeout=60).stdout.strip()
