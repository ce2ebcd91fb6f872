"""Property-based tests of the HTTP API against its own OpenAPI schema (schemathesis).

Every operation is called with the schema's examples, boundary values (coverage
phase) and random valid and invalid inputs: paths with slashes and odd
characters, out-of-range ``k``, unknown subjects, huge and malformed bodies, bad
tokens. No answer may be a 5xx, and every answer must match the schema (status
code, content type, headers, body) under schemathesis' default checks.

One default check is left out: ``positive_data_acceptance`` wants a 2xx for every
schema-valid request, but an unknown subject is schema-valid and must answer 422
(subjects come from the index, which a reload can change, so the schema cannot
list them). The admin token is configured and never given to the generator, so
the reload endpoint is exercised on its refusal paths (success: ``test_api.py``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from api.app import create_app
from recommender.config import BuildConfig
from tests.api_fixtures import SUPERVISED, build_demo_index, settings_for

#: random examples per operation and generation mode, on top of examples and boundaries
EXAMPLES = 50

# schemathesis needs the app when it collects, and starts its lifespan then (once for the
# process), so the index it serves (the demo corpus with the hashing encoder: a few tens
# of milliseconds) is built at import, and removed when the test process exits
_FOLDER = Path(tempfile.mkdtemp(prefix="api-schema-"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
build_demo_index(_FOLDER / "index", BuildConfig(model="hashing"))
APP = create_app(settings_for(_FOLDER / "index", max_text_bytes=2000))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
#: (operation, status) of every answer, to show what the run covered
SEEN: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module")
def loaded_app() -> Iterator[None]:
    """The app with its index loaded (by its lifespan, or here if that has not run yet)."""
    if APP.state.index_state.current is None:
        APP.state.index_state.load()
    yield


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_server_error_and_answers_match_the_schema(case: schemathesis.Case,
                                                      loaded_app: None) -> None:
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    SEEN[(f"{case.method} {case.path}", response.status_code)] += 1
    assert response.status_code < 500


def test_real_articles_answer_200_within_the_schema(loaded_app: None) -> None:
    """Random references mostly miss: check the success paths against the schema too."""
    operation = schema["/v1/articles/{ref}/related"]["GET"]
    for ref in (SUPERVISED, "9018", "what-is-supervised-learning"):
        case = operation.Case(path_parameters={"ref": ref},
                              query={"k": 3, "subject": ["Physics", "biology"]})
        response = case.call_and_validate()
        assert response.status_code == 200
        assert len(response.json()["suggestions"]) == 3
    article = schema["/v1/articles/{ref}"]["GET"].Case(path_parameters={"ref": "9018"})
    assert article.call_and_validate().status_code == 200
    post = schema["/v1/related"]["POST"].Case(body={"text": "gradient descent", "k": 2})
    assert post.call_and_validate().status_code == 200


def test_the_run_reached_success_and_error_paths() -> None:
    """Runs after the property test (file order): it exercised both kinds of answer."""
    if not SEEN:
        pytest.skip("the property test did not run (deselected)")
    statuses = {status for _, status in SEEN}
    assert {200, 404, 422} <= statuses, SEEN
    assert all(status < 500 for status in statuses)
    assert {status for (op, status) in SEEN if op == "POST /v1/admin/reload"} <= {401, 403, 422}
