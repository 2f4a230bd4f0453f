"""The heartbeat's template names (``capacity.templates``) are parsed again only when the admin
template directory's files change (issue 15: validating every template every heartbeat was most
of its cost at rest), and a changed, added or removed file is seen at the next heartbeat."""

from __future__ import annotations

import os

from bhype_core.hosts import capacity
from bhype_core.vm.settings import templates_dir

TEMPLATE = 'title = "{what}"\nos_type = "linux"\n[spec]\nboot = "uefi"\nmemory = "256M"\n'


def test_template_names_are_cached_until_the_directory_changes(make_host_runtime, monkeypatch):
    runtime = make_host_runtime("solo")
    parsed = []
    from bhype_core.vm import services  # capacity imports it when called: count through it

    catalog = services.template_catalog

    def counting(runtime):
        parsed.append(1)
        return catalog(runtime)

    monkeypatch.setattr(services, "template_catalog", counting)
    shipped = capacity.templates(runtime)
    assert shipped and "extra" not in shipped and capacity.templates(runtime) == shipped
    assert len(parsed) == 1  # the second heartbeat parsed nothing
    folder = templates_dir(runtime)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "extra.toml").write_text(TEMPLATE.format(what="one"))
    assert "extra" in capacity.templates(runtime) and len(parsed) == 2
    capacity.templates(runtime)
    assert len(parsed) == 2
    (folder / "extra.toml").write_text(TEMPLATE.format(what="a longer one"))  # size and mtime change
    capacity.templates(runtime)
    assert len(parsed) == 3
    os.unlink(folder / "extra.toml")
    assert capacity.templates(runtime) == shipped and len(parsed) == 4
