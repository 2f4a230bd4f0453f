"""The login page with real local accounts and the real PAM stack (the core's login service,
in-process PAM as root): success sets the same cookies as the API's login, failures say what
they may, ``next`` never leads off the site, and logging out ends the pages' access."""

from __future__ import annotations

import html
import http.cookies
from collections.abc import Iterator

import pytest
from pages_env import HTML, PagesEnv


@pytest.fixture
def world(tmp_path, local_user) -> Iterator[tuple[PagesEnv, object, object, object]]:
    admins, operators = local_user.group(), local_user.group()
    env = PagesEnv(tmp_path, auth={"backend": "in-process", "pam_service": local_user.pam_service(),
                                   "admin_groups": [admins.name], "operator_groups": [operators.name],
                                   "failure_min_seconds": 0})
    operator = local_user(groups=[operators])
    outsider = local_user()  # right password, but in no bHype group
    yield env, operator, outsider, admins
    env.close()


def cookies(response) -> dict[str, http.cookies.Morsel]:
    jar: dict[str, http.cookies.Morsel] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed = http.cookies.SimpleCookie()
        parsed.load(header)
        jar.update(parsed)
    return jar


def test_logging_in_sets_the_session_and_returns_to_the_page(world):
    env, operator, _, _ = world
    client = env.client()
    form = {"username": operator.name, "password": operator.password}
    response = client.post("/ui/login?next=/ui/vms%3Fq%3Dx", data=form, headers=HTML, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/vms?q=x"
    jar = cookies(response)
    session = jar["bhype_session"]
    assert session["httponly"] and session["samesite"].lower() == "strict"
    assert not jar["bhype_session_csrf"]["httponly"]  # the pages' scripts read it for the header
    page = client.get("/ui/vms?q=x", headers=HTML)
    assert page.status_code == 200 and f"<span>{operator.name} <span class=\"role\">operator</span>" in page.text
    me = client.get("/api/v1/auth/me").json()
    assert me["method"] == "session" and me["csrf_token"] == jar["bhype_session_csrf"].value

    # Logging out (the pages call the API with the token) ends the pages' access too.
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": me["csrf_token"]}).status_code == 204
    after = client.get("/ui/vms", headers=HTML, follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/ui/login?next=/ui/vms")


def test_a_wrong_password_gets_the_generic_answer_and_no_session(world):
    env, operator, _, _ = world
    client = env.client()
    response = client.post("/ui/login", data={"username": operator.name, "password": "not-" + operator.password},
                           headers=HTML, follow_redirects=False)
    assert response.status_code == 401
    assert "invalid username or password" in response.text
    assert f'value="{operator.name}"' in response.text  # the name stays filled in
    assert "bhype_session" not in cookies(response)
    unknown = client.post("/ui/login", data={"username": "bht_nobody_here", "password": "x"}, headers=HTML)
    assert unknown.status_code == 401 and "invalid username or password" in unknown.text


def test_an_account_in_no_bhype_group_gets_the_generic_answer_that_names_groups(world):
    env, _, outsider, _ = world
    response = env.client().post("/ui/login", data={"username": outsider.name, "password": outsider.password},
                                 headers=HTML)
    # The same answer as a wrong password (issue 11); its one message mentions both causes.
    assert response.status_code == 401
    assert "invalid username or password" in response.text
    assert "bhype_session" not in cookies(response)
    assert "group" in html.unescape(response.text).lower()


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "ui/vms"])
def test_next_never_leads_off_the_site(world, target):
    env, operator, _, _ = world
    response = env.client().post("/ui/login", params={"next": target},
                                 data={"username": operator.name, "password": operator.password},
                                 headers=HTML, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/"


def test_an_empty_form_names_what_is_missing(world):
    env, _, _, _ = world
    response = env.client().post("/ui/login", data={"username": "", "password": ""}, headers=HTML)
    assert response.status_code == 422 and "Enter your user name and password." in response.text
