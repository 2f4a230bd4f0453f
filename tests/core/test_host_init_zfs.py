"""``bhype host init --zfs-pool``: the ZFS step planned against recorded ``zpool list -Hp`` /
``zfs list -Hp`` outputs (tests/core/samples/hostinit/README.md names the man pages), applied to
a model of the pool that follows zfs-create(8)/zfs-set(8), and idempotent on the "done" state."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bhype_core.hostinit.plan import apply, count_changes, render
from bhype_core.hostinit.zfs import ZfsRequest, dataset_query, plan_zfs, pool_query

SAMPLES = Path(__file__).parent / "samples" / "hostinit"


def recorded(name: str) -> dict[tuple[str, ...], SimpleNamespace]:
    return {tuple(entry["argv"]): SimpleNamespace(returncode=entry["returncode"], stdout=entry["stdout"])
            for entry in json.loads((SAMPLES / name).read_text())}


class Pool:
    """The datasets of one pool as zfs(8) would report them: answers the two queries in their
    recorded format and applies ``zfs create -p -o …`` / ``zfs set`` like the man pages say
    (user properties are inherited by children, zfsprops(7))."""

    def __init__(self, answers: dict) -> None:
        self.answers = answers
        self.datasets: dict[str, dict[str, str]] = {}
        self.ran: list[list[str]] = []

    def ask(self, argv: list[str]):
        if tuple(argv) in self.answers:
            return self.answers[tuple(argv)]
        assert argv[:2] == ["zfs", "list"], f"query not recorded: {argv}"
        root = argv[-1]
        if root not in self.datasets:
            return SimpleNamespace(returncode=1, stdout="")
        names = [root] + sorted(n for n in self.datasets if n.rsplit("/", 1)[0] == root)
        lines = [f"{n}\tfilesystem\t{self.role(n)}" for n in names]
        return SimpleNamespace(returncode=0, stdout="".join(line + "\n" for line in lines))

    def role(self, name: str) -> str:
        while name:
            if "org.bhype:role" in self.datasets.get(name, {}):
                return self.datasets[name]["org.bhype:role"]
            name = name.rpartition("/")[0]
        return "-"

    def run(self, argv, input=None, check=True, **kwargs):
        self.ran.append(list(argv))
        if argv[:2] == ["zfs", "create"]:
            assert argv[2] == "-p"
            props = dict(word.split("=", 1) for word in argv[3:-1] if word != "-o")
            parts = argv[-1].split("/")
            for depth in range(2, len(parts)):  # -p: missing parents, without the -o properties
                self.datasets.setdefault("/".join(parts[:depth]), {})
            self.datasets.setdefault(argv[-1], {}).update(props)
        elif argv[:2] == ["zfs", "set"]:
            key, value = argv[2].split("=", 1)
            self.datasets.setdefault(argv[3], {})[key] = value
        # the pool query answers stay as recorded (the pool exists in these states)
        self.answers.pop(tuple(dataset_query(argv[-1])), None)
        return SimpleNamespace(returncode=0, stdout="", stderr="")


def test_fresh_pool_plans_the_root_its_mark_and_three_children() -> None:
    step = plan_zfs("freebsd", ZfsRequest("tank"), lambda argv: recorded("zfs-fresh.json")[tuple(argv)])
    assert [list(argv) for change in step.changes for argv in change.argvs] == [
        ["zfs", "create", "-p", "-o", "compression=lz4", "-o", "atime=off", "-o", "org.bhype:role=root", "tank/bhype"],
        ["zfs", "create", "-p", "tank/bhype/vms"],
        ["zfs", "create", "-p", "-o", "recordsize=1M", "tank/bhype/isos"],
        ["zfs", "create", "-p", "tank/bhype/templates"],
    ]
    assert "pool tank is imported (ONLINE)" in step.notes
    assert all(change.manpage == "zfs-create(8)" for change in step.changes)


def test_applying_the_fresh_plan_reaches_the_recorded_done_state_and_a_second_plan_is_empty() -> None:
    pool = Pool(recorded("zfs-fresh.json"))
    step = plan_zfs("freebsd", ZfsRequest("tank"), pool.ask)
    outcome = apply(pool, [step], echo=lambda line: None)
    assert not outcome.failed and len(outcome.applied) == 4
    listed = pool.ask(dataset_query("tank/bhype")).stdout
    assert listed == recorded("zfs-done.json")[tuple(dataset_query("tank/bhype"))].stdout
    again = plan_zfs("freebsd", ZfsRequest("tank"), pool.ask)
    assert again.done and not again.changes, render([again])


def test_already_done_state_plans_nothing_and_applies_nothing() -> None:
    answers = recorded("zfs-done.json")
    asked = []
    step = plan_zfs("freebsd", ZfsRequest("tank"), lambda argv: asked.append(tuple(argv)) or answers[tuple(argv)])
    assert step.done and count_changes([step]) == 0, render([step])
    runner = Pool({})
    assert apply(runner, [step]).applied == [] and runner.ran == []
    assert set(asked) == set(answers)  # the done state is everything the step reads
    assert "tank/bhype is bHype's root dataset" in step.notes


def test_an_unmarked_existing_root_is_marked_and_missing_children_created() -> None:
    answers = recorded("zfs-done.json")
    answers[tuple(dataset_query("tank/bhype"))] = SimpleNamespace(
        returncode=0, stdout="tank/bhype\tfilesystem\t-\ntank/bhype/vms\tfilesystem\t-\n")
    step = plan_zfs("freebsd", ZfsRequest("tank"), lambda argv: answers[tuple(argv)])
    assert [c.summary for c in step.changes] == [
        "mark tank/bhype as bHype's (org.bhype:role=root)", "create tank/bhype/isos", "create tank/bhype/templates"]
    assert step.changes[0].argvs == (("zfs", "set", "org.bhype:role=root", "tank/bhype"),)


def test_a_missing_pool_is_a_problem_unless_creating_it_was_asked_for() -> None:
    answers = recorded("zfs-no-pool.json")
    step = plan_zfs("freebsd", ZfsRequest("tank"), lambda argv: answers[tuple(argv)])
    assert not step.changes and "pool tank is not imported" in step.problems[0]

    request = ZfsRequest("tank", disks=("/dev/ada1", "/dev/ada2"), create_pool=True)
    step = plan_zfs("freebsd", request, lambda argv: answers[tuple(argv)])
    pool_change = step.changes[0]
    assert list(map(list, pool_change.argvs)) == [
        ["gpart", "create", "-s", "gpt", "ada1"],
        ["gpart", "add", "-t", "freebsd-zfs", "-a", "1m", "-l", "tank-0", "ada1"],
        ["gpart", "create", "-s", "gpt", "ada2"],
        ["gpart", "add", "-t", "freebsd-zfs", "-a", "1m", "-l", "tank-1", "ada2"],
        ["zpool", "create", "-o", "ashift=12", "-O", "compression=lz4", "-O", "atime=off", "tank", "mirror",
         "gpt/tank-0", "gpt/tank-1"],
    ]
    assert len(step.changes) == 5  # the pool, then the root and its three children
    linux = plan_zfs("linux", ZfsRequest("tank", disks=("/dev/sdb",), layout="single", create_pool=True),
                     lambda argv: answers[tuple(argv)])
    assert linux.changes[0].argvs == (("zpool", "create", "-o", "ashift=12", "-O", "compression=lz4", "-O",
                                       "atime=off", "tank", "/dev/sdb"),)


@pytest.mark.parametrize(("request_", "problem"), [
    (ZfsRequest("tank", disks=("/dev/ada1",)), "--zfs-disk is only used with --zfs-create-pool"),
    (ZfsRequest("tank", disks=("/dev/ada1",), create_pool=True), "layout mirror needs 2 disk(s) or more, got 1"),
    (ZfsRequest("tank", disks=("ada1", "ada2"), create_pool=True), "must be a device path under /dev/"),
    (ZfsRequest("tank", root="../x"), "is not a dataset path below the pool"),
    (ZfsRequest("ta nk"), "is not a pool name"),
])
def test_bad_requests_are_refused_before_the_host_is_asked(request_, problem) -> None:
    step = plan_zfs("freebsd", request_, lambda argv: pytest.fail(f"asked {argv}"))
    assert not step.changes and any(problem in p for p in step.problems), step.problems


def test_creating_a_pool_that_exists_is_refused_and_a_volume_root_is_a_problem() -> None:
    answers = recorded("zfs-done.json")
    step = plan_zfs("freebsd", ZfsRequest("tank", disks=("/dev/ada1",), layout="single", create_pool=True),
                    lambda argv: answers[tuple(argv)])
    assert step.problems == ("pool tank exists: drop --zfs-create-pool to use it",) and not step.changes
    answers[tuple(dataset_query("tank/bhype"))] = SimpleNamespace(returncode=0, stdout="tank/bhype\tvolume\t-\n")
    step = plan_zfs("freebsd", ZfsRequest("tank"), lambda argv: answers[tuple(argv)])
    assert "tank/bhype is a volume, not a file system" in step.problems[0]


def test_cli_plans_the_zfs_step_only_when_asked(tmp_path, capsys, monkeypatch) -> None:
    """Without ``--zfs-pool`` there is no ZFS step; with it the step is in the plan (here, with no
    zpool on this machine, as a problem naming it)."""
    from bhype_core.cli import main
    from bhype_core.testing.users import unique_name

    config = tmp_path / "bhype.toml"
    config.write_text(f'[core]\ndata_dir = "{tmp_path / "data"}"\n[auth]\napi_user = "{unique_name()}"\n'
                      f'pam_service = "{unique_name("bht-")}"\n')
    main(["--config", str(config), "host", "init", "--json", "--dry-run"])
    steps = json.loads(capsys.readouterr().out)["steps"]
    assert not any(step["name"].startswith("ZFS") for step in steps)
    monkeypatch.setenv("PATH", str(tmp_path))  # no zpool: the step says ZFS is not there
    main(["--config", str(config), "host", "init", "--json", "--dry-run", "--zfs-pool", "tank"])
    steps = json.loads(capsys.readouterr().out)["steps"]
    assert steps[-1]["name"] == "ZFS datasets on tank" and steps[-1]["problems"]
    assert pool_query() == ["zpool", "list", "-Hp", "-o", "name,health"]
