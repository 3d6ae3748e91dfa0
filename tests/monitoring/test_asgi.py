from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from companion.monitoring import Monitor, RequestMetricsMiddleware


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(request.path_params))


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("handler failed")


async def teapot(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no", status_code=418)


def make_app(monitor: Monitor) -> Starlette:
    app = Starlette(
        routes=[
            Route("/items/{item_id}", item),
            Route("/boom", boom),
            Route("/teapot", teapot),
            Mount("/api", routes=[Route("/things/{thing_id}", item)]),
        ]
    )
    app.add_middleware(RequestMetricsMiddleware, monitor=monitor)
    return app


def test_requests_are_labelled_by_route_template_not_raw_path() -> None:
    monitor = Monitor()
    with TestClient(make_app(monitor)) as client:
        for i in range(5):
            assert client.get(f"/items/{i}").status_code == 200
        client.get("/teapot")
        client.get("/api/things/7")
    assert monitor.request_stats("/items/{item_id}")["count"] == 5
    assert monitor.request_stats("/teapot")["count"] == 1
    assert monitor.request_stats("/api/things/{thing_id}")["count"] == 1
    assert monitor.requests.labels("/teapot", "418").value == 1
    assert "/items/3" not in monitor.endpoints()


def test_unmatched_paths_share_one_label() -> None:
    monitor = Monitor()
    with TestClient(make_app(monitor)) as client:
        for i in range(20):
            assert client.get(f"/probe/{i}").status_code == 404
    assert monitor.endpoints() == ["unmatched"]
    assert monitor.requests.labels("unmatched", "404").value == 20


def test_a_handler_that_raises_is_recorded_as_500() -> None:
    monitor = Monitor()
    with TestClient(make_app(monitor), raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
    stats = monitor.request_stats("/boom")
    assert stats["count"] == 1
    assert stats["error_rate"] == 1.0


def test_works_with_fastapi_routes() -> None:
    from fastapi import FastAPI

    monitor = Monitor()
    app = FastAPI()

    @app.get("/v1/tools/{name}")
    async def tool(name: str) -> dict[str, str]:
        return {"name": name}

    app.add_middleware(RequestMetricsMiddleware, monitor=monitor)
    with TestClient(app) as client:
        client.get("/v1/tools/add")
        client.get("/v1/tools/mul")
    assert monitor.request_stats("/v1/tools/{name}")["count"] == 2


def test_lifespan_and_non_http_scopes_pass_through() -> None:
    monitor = Monitor()
    with TestClient(make_app(monitor)):
        pass  # lifespan startup and shutdown ran through the middleware
    assert monitor.endpoints() == []


def test_metrics_endpoint_scrape_parses() -> None:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from starlette.responses import Response

    registry = CollectorRegistry()
    monitor = Monitor(registry=registry)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = make_app(monitor)
    app.router.routes.append(Route("/metrics", metrics))
    with TestClient(app) as client:
        client.get("/items/1")
        body = client.get("/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(body)}
    requests = families["companion_http_requests"]
    assert {s.labels["endpoint"] for s in requests.samples} == {"/items/{item_id}"}
    assert families["companion_http_request_duration_seconds"].type == "histogram"
