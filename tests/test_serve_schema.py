"""Property-based run of the API against its own OpenAPI schema (schemathesis, in-process ASGI):
whatever the request, no 500, and every answer's status, content type, headers and body conform
to what /openapi.json documents. Bounded examples per operation, so it stays a few seconds."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from serve_support import auth_env, bearer

from mirror_cli.models import Persona
from mirror_cli.settings import load_settings

EXAMPLES = 12


@pytest.fixture
def api(auth_env: Any, tmp_path: Any) -> Any:
    from mirror_cli.server.app import create_app

    app = create_app(load_settings({"data_dir": tmp_path / "data", "serve_rate_per_minute": 100_000}))
    core = app.state.service.core
    uid, token = auth_env.sign_up()
    core.store.put_user(Persona(id=uid, name="Ada"))
    _, admin_token = auth_env.admin_user()
    yield schemathesis.openapi.from_asgi("/openapi.json", app), uid, token, admin_token
    core.close()
    app.state.service.verifier.close()


def test_every_operation_conforms_to_the_schema(api: Any) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema, _, token, admin_token = api
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/avatar/generate", "/api/v1/avatar/user/{user_id}"}
    for op in operations:
        for headers in (bearer(admin_token), bearer(token), {}):
            _fuzz(op, headers, checks)


def _fuzz(op: Any, headers: dict[str, str], checks: list[Any]) -> None:
    @given(case=op.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    run()
