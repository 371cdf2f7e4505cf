"""The interactive API docs, /docs (Swagger UI) and /redoc (ReDoc), with every script, stylesheet and
image served by the service itself, so that they render on a machine without internet.

FastAPI's default pages load Swagger UI and ReDoc from public CDNs, the favicon from FastAPI's site and
ReDoc's fonts from Google. These pages are built by the same FastAPI functions, given same-origin
URLs of the dists that the `fastapi-standalone-docs` package ships: Swagger UI, ReDoc (patched to
load its logo from beside the page rather than from Redocly's CDN) and FastAPI's favicon, each with
its licence. Only that package's files are used: its own entry point replaces FastAPI's module-level
page functions, which would change the docs of every app in the process."""

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
SWAGGER_ASSETS_URL = f"{DOCS_URL}/assets"
REDOC_ASSETS_URL = f"{REDOC_URL}/assets"
FAVICON = "favicon.png"

_PACKAGE = "fastapi_standalone_docs"
_SWAGGER_DIST = (_PACKAGE, "static/swagger")
_REDOC_DIST = (_PACKAGE, "static/redoc")
_FAVICON_DIR = (_PACKAGE, "static/fastapi")

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # A token entered under "Authorize" survives a page reload. The button appears once the API
    # declares a security scheme (an HTTPBearer dependency adds one).
    "persistAuthorization": True,
    # Otherwise Swagger UI shows a badge image from validator.swagger.io and sends it the spec's URL.
    "validatorUrl": None,
}


def install_offline_docs(app: FastAPI) -> None:
    """Add /docs and /redoc, and the assets they load, to an app built with docs_url=None and
    redoc_url=None (FastAPI's own pages would otherwise answer first)."""
    if app.openapi_url is None:
        return
    openapi_url = app.openapi_url
    app.mount(SWAGGER_ASSETS_URL, StaticFiles(packages=[_SWAGGER_DIST, _FAVICON_DIR]), name="swagger-ui-assets")
    app.mount(REDOC_ASSETS_URL, StaticFiles(packages=[_REDOC_DIST, _FAVICON_DIR]), name="redoc-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        redirect = app.swagger_ui_oauth2_redirect_url
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_ASSETS_URL}/{FAVICON}",
            oauth2_redirect_url=root + redirect if redirect else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )

    if app.swagger_ui_oauth2_redirect_url:

        @app.get(app.swagger_ui_oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_oauth2_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{REDOC_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{REDOC_ASSETS_URL}/{FAVICON}",
            with_google_fonts=False,
        )

    # The patched ReDoc bundle asks for its logo at "<page path>/logo-mini.svg".
    @app.get(f"{REDOC_URL}/logo-mini.svg", include_in_schema=False)
    async def redoc_logo() -> FileResponse:
        return FileResponse(_dist_dir(_REDOC_DIST) / "logo-mini.svg", media_type="image/svg+xml")


def _root_path(request: Request) -> str:
    """The prefix a reverse proxy serves the app under ("" when none), as FastAPI's own pages use it."""
    root_path: str = request.scope.get("root_path", "")
    return root_path.rstrip("/")


def _dist_dir(dist: tuple[str, str]) -> Path:
    package, directory = dist
    return Path(str(files(package).joinpath(directory)))
