"""`/dashboard`: a live page of the service's own metrics, its sign-in, and its JSON feed.

The page, its script and its stylesheet ship in the package (`_dashboard_assets/`) and are read
once at import: the page works offline and serves no third-party code. Sign-in takes an admin key
once (a POST form, or `?token=` for scripts) and answers with a signed HttpOnly, SameSite=Strict
cookie; the key itself is never stored in the browser.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import html
from importlib import resources
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from companion.api._auth import authenticate
from companion.api._dashboard_session import COOKIE, REFERRER_POLICY, check_sign_in_origin
from companion.api._state import AppState, State, app_state
from companion.errors import CompanionError, Forbidden, NotFound, Unauthorized
from companion.keys import ApiKey

__all__ = ["dashboard_admin", "router"]

router = APIRouter(prefix="/dashboard", include_in_schema=False)
_ASSETS = resources.files("companion.api") / "_dashboard_assets"
_STATIC = {
    name: (_ASSETS / name).read_bytes() for name in ("dashboard.js", "dashboard.css", "favicon.svg")
}
_ETAGS = {name: '"' + hashlib.sha256(body).hexdigest()[:16] + '"' for name, body in _STATIC.items()}
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_PAGE = (_ASSETS / "page.html").read_text()
_SIGN_IN = (_ASSETS / "signin.html").read_text()
# Only our own files, no inline script: a page that shows metrics never runs anyone else's code.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": REFERRER_POLICY,
    "Cache-Control": "no-store",
}


def _sign_in_page(message: str = "", status_code: int = 200) -> HTMLResponse:
    notice = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(
        _SIGN_IN.replace("{{notice}}", notice), status_code=status_code, headers=_HEADERS
    )


def _signed_in(request: Request, state: AppState, key: ApiKey) -> Response:
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        COOKIE,
        state.dashboard.signer.issue(key.key_id),
        max_age=int(state.dashboard.signer.ttl_s),
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def _admin_from_token(state: AppState, token: str) -> ApiKey:
    """Verify a key given by hand (form or query) exactly as a header would be."""
    if state.key_ring is None:
        await state.open_keys(retry_interval_s=5.0)
    keys, token = state.keys, token.strip()
    key = keys.verify_fast(token)
    if key is None:  # a cache miss: the store is read off the event loop
        key = await asyncio.to_thread(keys.verify, token)
    if not key.allows("admin"):
        raise Forbidden("The dashboard needs a key with the `admin` scope.")
    return key


async def dashboard_admin(request: Request) -> ApiKey:
    """The admin key of this request: from the session cookie, else from the API key headers."""
    state = app_state(request)
    if state.key_ring is None:
        await state.open_keys(retry_interval_s=5.0)
    signer = state.dashboard.signer
    cookie = request.cookies.get(COOKIE)
    if cookie is not None and "authorization" not in request.headers:
        key_id = signer.verify(cookie)
        ttl_s = state.settings.key_cache_ttl_s
        key = await signer.key_of(key_id, lambda: state.keys, ttl_s) if key_id else None
        if key is None:
            raise Unauthorized("The dashboard session has expired: sign in again.")
        key.check_usable(dt.datetime.now(dt.UTC))
    else:
        key = await authenticate(request, state.keys)
    if not key.allows("admin"):
        raise Forbidden("The dashboard needs a key with the `admin` scope.")
    return key


@router.get("")
async def page(request: Request, state: State, token: str | None = None) -> Response:
    """The dashboard, or the sign-in form; `?token=KEY` signs in and redirects to a clean URL."""
    if token is not None:
        try:
            key = await _admin_from_token(state, token)
        except CompanionError as exc:
            return _sign_in_page(exc.message, exc.status)
        return _signed_in(request, state, key)
    try:
        await dashboard_admin(request)
    except CompanionError:
        return _sign_in_page()
    body = _PAGE.replace("{{interval_ms}}", str(int(state.dashboard.interval_s * 1000)))
    return HTMLResponse(body, headers=_HEADERS)


@router.post("/session")
async def sign_in(request: Request, state: State) -> Response:
    """The sign-in form's target: a urlencoded `key` field."""
    check_sign_in_origin(request)
    fields = parse_qs((await request.body()).decode(errors="replace"))
    token = (fields.get("key") or [""])[0]
    if not token:
        return _sign_in_page("Paste an API key with the admin scope.", 401)
    try:
        key = await _admin_from_token(state, token)
    except CompanionError as exc:
        return _sign_in_page(exc.message, exc.status)
    return _signed_in(request, state, key)


@router.post("/signout")
async def sign_out() -> Response:
    """Forget the session cookie."""
    response = RedirectResponse("/dashboard", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return response


@router.get("/data", dependencies=[Depends(dashboard_admin)])
async def data(state: State) -> Response:
    """The charts' history, alerts and health (admin): encoded by the sampler, not per request."""
    return Response(state.dashboard.body, media_type="application/json", headers=_HEADERS)


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    """The page's script, stylesheet and icon (public: they hold no data)."""
    body = _STATIC.get(name)
    if body is None:
        raise NotFound(f"No dashboard asset {name!r}.")
    etag = _ETAGS[name]
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=_TYPES[name[name.rindex(".") :]], headers=headers)
