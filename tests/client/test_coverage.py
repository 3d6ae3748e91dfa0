"""The client builds a request for every route of the service's OpenAPI document: a route added to
the service without a client method fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from companion_client import InputFile
from companion_client import _calls as calls
from companion_client import _sessions as sessions

from companion.api import create_app
from companion.config import load_settings


def _every_call() -> list[calls.Call[Any]]:
    """One call from each request builder of the client (no I/O: building only)."""
    handle: sessions._Handle[Any] = sessions._Handle(None, {"id": "ses_1"})
    return [
        calls.execute({"language": "python", "code": "1"}),
        calls.run({"language": "python", "code": "1"}),
        calls.runtimes(),
        calls.live(),
        calls.ready(),
        calls.list_tools(None),
        calls.export_tools("mcp", None, None),
        calls.get_tool("add"),
        calls.invoke_tool("add", {}, None),
        calls.invoke_tools([("add", {})], None, None),
        calls.list_collections(),
        calls.create_collection("c", ""),
        calls.ensure_collection("c", ""),
        calls.get_collection("c"),
        calls.delete_collection("c"),
        calls.add_documents("c", [{"text": "t"}]),
        calls.list_documents("c", 10, None),
        calls.get_document("c", "d"),
        calls.delete_document("c", "d"),
        calls.upload_files("c", {"a.txt": b"a"}, None),
        calls.search("c", "q", mode="bm25", k=1, filter=None, with_snippets=True),
        calls.cache_stats(),
        calls.invalidate("k", None, None),
        calls.monitoring_report(),
        calls.alerts(),
        calls.profiling_report("total_s", 1, "json"),
        calls.get_trace("t", "text"),
        sessions.create_session("python", None, None),
        sessions.list_sessions(),
        handle._info_call(),
        handle._run_call({"code": "1"}),
        handle._files_call(),
        handle._write_call({"a.txt": "a"}),
        handle._put_call(InputFile("a.txt", b"a")),
        handle._download_call("a.txt"),
        handle._delete_file_call("a.txt"),
        handle._close_call(),
    ]


def test_every_route_of_the_openapi_document_has_a_call(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, execution_enabled=False)
    spec = create_app(settings).openapi()
    routes = {
        (method.upper(), template)
        for template, operations in spec["paths"].items()
        for method in operations
        if template.startswith("/v1/") or template in {"/livez", "/readyz"}
    }
    built = [(call.method, call.path) for call in _every_call()]
    covered = set()
    for method, template in routes:
        # `{path}` of a workspace file may hold slashes; every other parameter is one segment.
        pattern = re.sub(r"\{path\}", "[^?]+", template)
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", pattern)
        if any(m == method and re.fullmatch(pattern, path) for m, path in built):
            covered.add((method, template))
    assert routes - covered == set()
    assert len(routes) >= 35
