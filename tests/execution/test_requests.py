"""Requests: results as the spec draws them, and bad input refused with a clear typed error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from companion.execution import (
    ExecutionRequest,
    InvalidSnippet,
    LimitAboveMaximum,
    SyncExecutor,
    UnknownLanguage,
)
from tests.execution.conftest import run

pytestmark = pytest.mark.sandbox


def test_python_result_has_every_field(sandbox: SyncExecutor) -> None:
    result = run(sandbox, "import sys\nprint(sys.argv[1:], input())", args=["a"], stdin="typed\n")
    assert result.status == "ok"
    assert result.stdout == "['a'] typed\n"
    assert result.exit_code == 0
    assert result.signal is None
    assert result.language == "python"
    assert result.version.count(".") == 2
    assert result.usage.wall_ms > 0
    assert result.usage.cpu_ms > 0
    assert result.usage.memory_bytes > 0


def test_traceback_is_trimmed_to_the_users_code(sandbox: SyncExecutor) -> None:
    result = run(sandbox, "def f():\n    return 1 / 0\n\nf()")
    assert result.status == "runtime_error"
    assert result.exit_code == 1
    assert result.error is not None
    assert result.error.name == "ZeroDivisionError"
    assert result.error.value == "division by zero"
    assert 'File "main.py", line 4, in <module>' in result.error.traceback
    assert 'File "main.py", line 2, in f' in result.error.traceback
    assert "sandbox" not in result.error.traceback
    assert "child.py" not in result.error.traceback


def test_exit_codes_are_reported(sandbox: SyncExecutor) -> None:
    assert run(sandbox, "raise SystemExit(3)").exit_code == 3
    exited = run(sandbox, "import sys\nsys.exit('bye')")
    assert exited.exit_code == 1
    assert exited.stderr == "bye\n"
    assert exited.status == "runtime_error"


def test_files_are_importable_from_the_entry_file(sandbox: SyncExecutor) -> None:
    request = ExecutionRequest.model_validate(
        {
            "language": "python",
            "files": [
                {"name": "app.py", "content": "import helper\nprint(helper.double(21))"},
                {"name": "helper.py", "content": "def double(x):\n    return 2 * x"},
            ],
        }
    )
    assert sandbox.run(request).stdout == "42\n"


def test_javascript_runs_modern_code(sandbox: SyncExecutor) -> None:
    code = "const xs = [1, 2, 3].map((x) => x ** 2);\nconsole.log(xs, {a: 1}, `n=${xs.length}`)"
    result = run(sandbox, code, "js")
    assert result.status == "ok", result
    assert result.stdout == '[1,4,9] {"a":1} n=3\n'
    assert result.language == "javascript"


def test_javascript_error_is_structured(sandbox: SyncExecutor) -> None:
    result = run(sandbox, "function f() { throw new TypeError('bad') }\nf()", "javascript")
    assert result.status == "runtime_error"
    assert result.error is not None
    assert (result.error.name, result.error.value) == ("TypeError", "bad")
    assert "at f" in result.error.traceback


def test_lowered_limits_apply(sandbox: SyncExecutor) -> None:
    result = run(sandbox, "print('y' * 5000)", limits={"max_output_bytes": 1024})
    assert result.status == "output_limit"
    assert len(result.stdout) == 1024


@pytest.mark.parametrize(
    ("fields", "error", "pointer"),
    [
        ({"language": "cobol", "code": "x"}, UnknownLanguage, "/language"),
        ({"language": "python", "code": "   \n"}, InvalidSnippet, "/code"),
        ({"language": "python", "code": "x = 1\n" * 100_000}, InvalidSnippet, "/code"),
        ({"language": "python", "code": "print('\udcff')"}, InvalidSnippet, "/code"),
        (
            {"language": "python", "code": "x", "limits": {"wall_time_ms": 10**9}},
            LimitAboveMaximum,
            "/limits/wall_time_ms",
        ),
        (
            {"language": "js", "code": "x", "limits": {"memory_bytes": 2**40}},
            LimitAboveMaximum,
            "/limits/memory_bytes",
        ),
    ],
    ids=["language", "empty", "too-large", "not-utf8", "wall-above-max", "memory-above-max"],
)
def test_bad_requests_get_a_typed_error_naming_the_field(
    sandbox: SyncExecutor, fields: dict[str, object], error: type[Exception], pointer: str
) -> None:
    with pytest.raises(error) as caught:
        sandbox.run(ExecutionRequest.model_validate(fields))
    assert caught.value.errors[0]["pointer"] == pointer  # type: ignore[attr-defined]
    assert caught.value.status == 422  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "fields",
    [
        {"language": "python"},
        {
            "language": "python",
            "files": [{"name": "a.bin", "content": "AA==", "encoding": "base64"}],
        },
        {
            "language": "python",
            "code": "x",
            "files": [{"name": "a", "content": "%", "encoding": "base64"}],
        },
        {"language": "python", "code": "x", "files": [{"name": "a", "content": "x"}] * 2},
        {"language": "python", "code": "x", "limits": {"wall_time_ms": -1}},
        {"language": "python", "code": "x", "limits": {"wall_time_ms": "10"}},
        {"language": "python", "code": "x", "env": {"1BAD": "x"}},
        {"language": "python", "files": [{"name": "../escape.py", "content": "x"}]},
        {"language": "python", "code": "x", "files": [{"name": "/etc/x", "content": "x"}]},
        {"language": "python", "code": "x", "files": [{"name": "a/../../x", "content": "x"}]},
        {"language": "python", "code": "x", "files": [{"name": ".hidden", "content": "x"}]},
        {"language": "python", "code": "x", "files": [{"name": "a//b", "content": "x"}]},
        {"language": "python", "code": "x", "files": [{"name": "/".join("a" * 9), "content": ""}]},
        {"language": "python", "code": "x", "surprise": True},
    ],
    ids=[
        "no-code",
        "binary-entry",
        "bad-base64",
        "repeated-name",
        "negative",
        "string-number",
        "env-name",
        "path",
        "absolute",
        "traversal",
        "hidden",
        "empty-segment",
        "too-deep",
        "extra",
    ],
)
def test_malformed_requests_fail_validation(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ExecutionRequest.model_validate(fields)


@pytest.mark.parametrize(
    "names",
    [["a", "a/b"], ["data/x", "data/x/y.csv"]],
    ids=["file-then-inside", "deeper"],
)
def test_input_files_inside_other_input_files_are_refused(names: list[str]) -> None:
    files = [{"name": name, "content": "x"} for name in names]
    with pytest.raises(ValidationError, match="would be inside file"):
        ExecutionRequest.model_validate({"language": "python", "code": "1", "files": files})


def test_many_repeated_file_names_are_refused_quickly() -> None:
    files = [{"name": f"f{i % 5000}", "content": ""} for i in range(10_000)]
    with pytest.raises(ValidationError, match="repeat"):
        ExecutionRequest.model_validate({"language": "python", "code": "1", "files": files})


def test_the_entry_file_cannot_be_a_folder(sandbox: SyncExecutor) -> None:
    request = ExecutionRequest.model_validate(
        {"language": "python", "code": "print(1)", "files": [{"name": "main.py/x", "content": ""}]}
    )
    with pytest.raises(InvalidSnippet, match="cannot be a folder"):
        sandbox.run(request)
