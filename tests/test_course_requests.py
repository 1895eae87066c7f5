"""The course request page: an instructor's form becomes the CLI's registry file, proposed
as a pull request on the GitHub stand-in; an approver approves it with the CLI, and the
page shows the decision. A student is refused the page.
"""

from __future__ import annotations

import base64
import re
from argparse import Namespace
from datetime import UTC, datetime

import pytest
import requests
import yaml

from coursehub.course_request_service import BRANCH_PREFIX, SERVICE_NAME
from coursehub.course_requests import new_course, problems
from coursehub_tools import course_lifecycle
from coursehub_tools.hub_client import login_with_standin
from coursehub_tools.yamlfiles import ROOT, ConfigError

SERVICE = f"/services/{SERVICE_NAME}/"
REPOSITORY = "coursehub-school/coursehub"
SCHEMA = yaml.safe_load((ROOT / course_lifecycle.COURSE_SCHEMA).read_text())
FORM = {
    "title": "Machine Learning 201",
    "slug": "ml-201",
    "start": "2027-03-01",
    "end": "2027-05-28",
    "image": "ghcr.io/coursehub/ml-201:2027.2.1",
    "instructors": "coursehub-school:instructors",
    "students": "coursehub-school:students",
    "expected": "60",
    "why": "spring term",
}
AT = "2027-01-10T09:00:00Z"


def cli_answers(**changed) -> Namespace:
    """What `coursehub-course request` parses from its command line."""
    teams = {"instructors": [FORM["instructors"]], "students": [FORM["students"]]}
    answers = dict(slug="ml-201", title="Machine Learning 201", image=FORM["image"],
                   start="2027-03-01", end="2027-05-28", by="ian", why="spring term",
                   contact=[], expected_students=60, memory="1G", memory_limit="2G", cpu=0.25,
                   cpu_limit=1.0, **teams)  # fmt: skip
    return Namespace(**{**answers, **changed})


@pytest.mark.unit
def test_the_page_and_the_cli_write_one_record(project_copy):
    """The CLI's file, read back, is the record the page proposes for the same answers."""
    clock = lambda: datetime(2027, 1, 10, 9, tzinfo=UTC)  # noqa: E731
    path = course_lifecycle.request(cli_answers(), clock, project_copy.root)
    written = yaml.safe_load(path.read_text())
    proposed = new_course(slug="ml-201", title="Machine Learning 201", image=FORM["image"],
                          start="2027-03-01", end="2027-05-28",
                          instructors=["coursehub-school:instructors"],
                          students=["coursehub-school:students"], by="ian", why="spring term",
                          at=AT, expected_students=60)  # fmt: skip
    assert written == proposed
    assert problems(proposed, SCHEMA) == {}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("changed", "field", "words"),
    [
        ({"image": "ghcr.io/coursehub/ml-201:latest"}, "image", "an image pinned by a tag"),
        ({"end": "2027-02-01"}, "end", "before start 2027-03-01"),
        ({"start": "2027-02-30"}, "start", "a real date"),
        ({"students": ["students"]}, "groups.students.0", "organization:team"),
    ],
)
def test_the_page_refuses_what_the_cli_refuses(project_copy, changed, field, words):
    clock = lambda: datetime(2027, 1, 10, 9, tzinfo=UTC)  # noqa: E731
    with pytest.raises(ConfigError, match=re.escape(words)):
        course_lifecycle.request(cli_answers(**changed), clock, project_copy.root)
    record = vars(cli_answers(**changed))
    record = new_course(**{k: record[k] for k in ("slug", "title", "image", "start", "end",
                                                  "instructors", "students", "by", "why")},
                        at=AT)  # fmt: skip
    found = problems(record, SCHEMA)
    assert words in found[field], found


# --- on a local hub -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory, start_hub):
    with start_hub(tmp_path_factory.mktemp("course-requests"), server="lightweight") as hub:
        yield hub


def standin_token(hub, login: str) -> dict:
    """The headers of a personal access token of `login`'s on the stand-in."""
    token = requests.post(f"{hub.standin_url}/_standin/tokens/{login}", timeout=10).json()["token"]
    return {"Authorization": f"token {token}"}


def github(hub, method: str, path: str, login: str = "ada", **kwargs) -> requests.Response:
    url = f"{hub.standin_url}/api/v3/repos/{REPOSITORY}/{path}"
    return requests.request(method, url, headers=standin_token(hub, login), timeout=10, **kwargs)


def xsrf(page: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)


def ask(session: requests.Session, hub, form: dict) -> requests.Response:
    page = session.get(hub.url + SERVICE, timeout=30)
    return session.post(hub.url + SERVICE, data={**form, "_xsrf": xsrf(page.text)}, timeout=60)


def text_of(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


@pytest.mark.hub
def test_an_instructors_request_becomes_a_pull_request_an_approver_approves(hub, project_copy):
    ian = login_with_standin(hub.url, "ian", next_url=SERVICE)
    assert ian.response.status_code == 200 and "Ask for a course" in ian.page

    # A field wrong: said beside it, the answers kept, nothing proposed, a warning logged.
    wrong = ask(ian.session, hub, {**FORM, "image": "ghcr.io/coursehub/ml-201:latest"})
    assert wrong.status_code == 400
    assert "an image pinned by a tag" in re.search(r"id='wrong-image'>([^<]*)", wrong.text)[1]
    assert "value='Machine Learning 201'" in wrong.text
    assert github(hub, "GET", "pulls", params={"state": "all"}).json() == []
    assert "course request by ian refused: image:" in (hub.state_dir / "hub.log").read_text()

    asked = ask(ian.session, hub, FORM)
    assert asked.status_code == 200 and "pull request #1" in asked.text, asked.text
    (pull,) = github(hub, "GET", "pulls").json()
    assert pull["head"]["ref"] == BRANCH_PREFIX + "ml-201" and pull["base"]["ref"] == "main"
    assert pull["user"]["login"] == "coursehub-requests-bot"
    assert "requested: waiting for an approver" in text_of(asked.text)

    # The same course again: GitHub's 422 for the branch, said on the page.
    again = ask(ian.session, hub, FORM)
    assert again.status_code == 400 and "is open already" in again.text

    # The approver: the request's file, `coursehub-course approve` on it, pushed back.
    path = "deploy/courses/ml-201.yaml"
    found = github(hub, "GET", f"contents/{path}", params={"ref": pull["head"]["ref"]}).json()
    (project_copy.root / path).write_text(base64.b64decode(found["content"]).decode())
    approve = ["--root", str(project_copy.root), "approve", "ml-201", "--by", "ada", "--why",
               "room and budget agreed"]  # fmt: skip
    assert course_lifecycle.main(approve) == 0
    approved = base64.b64encode((project_copy.root / path).read_bytes()).decode()
    body = {"message": "Approve ml-201", "content": approved, "sha": found["sha"],
            "branch": pull["head"]["ref"]}  # fmt: skip
    assert github(hub, "PUT", f"contents/{path}", json=body).status_code == 200
    page = text_of(ian.session.get(hub.url + SERVICE, timeout=30).text)
    assert "approved: it opens to its students on its start date" in page
    assert "approved by ada on" in page and "room and budget agreed" in page

    # Merged, the page reads the registry's main branch: still approved.
    assert github(hub, "PUT", f"pulls/{pull['number']}/merge").json()["merged"] is True
    page = text_of(ian.session.get(hub.url + SERVICE, timeout=30).text)
    assert "approved: it opens" in page


@pytest.mark.hub
def test_the_standin_refuses_a_token_without_write_permission(hub):
    """GitHub's 403 for a user who may read the repository and not write to it."""
    head = github(hub, "GET", "git/ref/heads/main", login="sam").json()["object"]["sha"]
    refused = github(hub, "POST", "git/refs", login="sam",
                     json={"ref": "refs/heads/sams-course", "sha": head})  # fmt: skip
    assert refused.status_code == 403
    assert refused.json()["message"] == "Resource not accessible by personal access token"


@pytest.mark.hub
def test_a_student_is_refused_the_page(hub):
    sam = login_with_standin(hub.url, "sam", next_url=SERVICE)
    assert sam.response.status_code == 403, sam.page[:500]
    assert "Ask for a course" not in sam.page
