"""`failure_message`, the text every adapter gives a model, on the service's real errors."""

from __future__ import annotations

import pytest
from companion_client import Client, Forbidden, ToolFailed, ValidationFailed
from companion_client.integrations import failure_message

pytestmark = [pytest.mark.slow]


def test_a_tool_failure_names_the_tool_and_its_code(client: Client) -> None:
    with pytest.raises(ToolFailed) as failed:
        client.invoke_tool("sqrt", {"x": -4}).unwrap()
    assert failure_message(failed.value) == (
        "sqrt failed (math_domain): cannot take the square root of a negative number (-4.0)"
    )


def test_a_missing_scope_gives_the_detail_code_and_status(client: Client) -> None:
    # The agent key may read knowledge, not write it.
    with pytest.raises(Forbidden) as refused:
        client.invoke_tool("remember", {"collection": "notes", "text": "x"})
    assert failure_message(refused.value) == (
        "remember acts through the `knowledge:write` scope, which this caller lacks "
        "(scope_missing, HTTP 403)"
    )


def test_field_errors_missing_from_the_detail_are_added(client: Client) -> None:
    # A body the service refuses before the tool: its detail counts fields, `errors` names them.
    with pytest.raises(ValidationFailed) as invalid:
        client.request("POST", "/v1/tools/add/invoke", json={"arguments": [1, 2]})
    assert failure_message(invalid.value) == (
        "1 field is invalid. (validation_failed, HTTP 422); "
        "/arguments: Input should be a valid dictionary"
    )
