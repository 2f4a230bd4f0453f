"""Directories (owner, group, mode) and the PAM service file.

Read with stat(1) (FreeBSD ``-f '%Su %Sg %Mp%Lp'``, GNU ``-c '%U %G %a'``) and cat(1); applied
with install(1) ``-d -o -g -m`` (creates or corrects an existing directory, both platforms) and,
for the PAM file, tee(1) fed the shipped text on stdin, then chmod(1) 0644 (pam.conf(5) on
FreeBSD, pam.d(5) on Linux).
"""

from __future__ import annotations

from bhype_core.hostinit.accounts import Ask
from bhype_core.hostinit.layout import Directory, Layout
from bhype_core.hostinit.parsers import parse_stat_line
from bhype_core.hostinit.plan import Change, Step


def stat_query(platform: str, path: str) -> list[str]:
    """owner, group and octal mode of ``path`` on one line."""
    if platform == "freebsd":
        return ["stat", "-f", "%Su %Sg %Mp%Lp", path]
    return ["stat", "-c", "%U %G %a", path]


def install_dir(directory: Directory) -> list[str]:
    """install(1) ``-d``: create the directory, or set owner, group and mode of an existing one."""
    return ["install", "-d", "-o", directory.owner, "-g", directory.group, "-m", f"{directory.mode:o}",
            str(directory.path)]


def plan_directories(platform: str, layout: Layout, ask: Ask) -> Step:
    """Each directory exists with its owner, group and mode."""
    changes, notes = [], []
    for directory in layout.directories:
        answer = ask(stat_query(platform, str(directory.path)))
        state = parse_stat_line(answer.stdout) if answer.returncode == 0 else None
        wanted = f"{directory.owner}:{directory.group} {directory.mode:04o}"
        if state is None:
            summary = f"create {directory.path} {wanted} ({directory.why})"
        elif (state.owner, state.group, state.mode) != (directory.owner, directory.group, directory.mode):
            summary = f"set {directory.path} to {wanted} (is {state.owner}:{state.group} {state.mode:04o})"
        else:
            notes.append(f"{directory.path} is {wanted}")
            continue
        changes.append(Change(summary, (tuple(install_dir(directory)),), "install(1)"))
    return Step("directories", "install(1), stat(1)", tuple(changes), tuple(notes))


def plan_pam(platform: str, layout: Layout, ask: Ask) -> Step:
    """The PAM service file holds exactly the text bHype ships."""
    page = "pam.conf(5)" if platform == "freebsd" else "pam.d(5)"
    path = str(layout.pam_path)
    answer = ask(["cat", path])
    if answer.returncode == 0 and answer.stdout == layout.pam_text:
        return Step("PAM service", page, notes=(f"{path} is bHype's",))
    what = "write" if answer.returncode != 0 else "replace (it differs from bHype's)"
    parent = str(layout.pam_path.parent)  # /usr/local/etc/pam.d may not exist on a fresh host
    change = Change(f"{what} {path}", (("install", "-d", "-m", "755", parent), ("tee", path),
                                       ("chmod", "0644", path)), page, inputs=(None, layout.pam_text, None))
    return Step("PAM service", page, (change,))
