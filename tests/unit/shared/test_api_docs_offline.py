"""The interactive API docs (/docs, /redoc) of every service render on a machine without internet:
each script, stylesheet, image and URL the pages load is served by the service itself.

The docs need neither Postgres nor Kafka, so each app is called in process without its lifespan."""

import mimetypes
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest
from inventory_service.entrypoints.api import create_app as create_inventory_app
from order_service.entrypoints.api import create_app as create_order_app
from payment_service.entrypoints.api import create_app as create_payment_app

SERVICES = {"order": create_order_app, "payment": create_payment_app, "inventory": create_inventory_app}
DOCS_PAGES = ("/docs", "/redoc")
# A quoted URL inside an inline script, e.g. the Swagger UI config's `url: '/openapi.json'`.
INLINE_URL = re.compile(r"""(['"])((?:https?:)?//[^'"\s]*|/[^'"\s]*)\1""")


class References(HTMLParser):
    """Every URL a docs page makes the browser fetch, with the content type it must come back as."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (url, expected content type prefix)
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        rel = attributes.get("rel", "").split()
        if tag == "script":
            if "src" in attributes:
                self.found.append((attributes["src"], "text/javascript"))
            self._in_inline_script = "src" not in attributes
        elif tag == "link" and "stylesheet" in rel:
            self.found.append((attributes["href"], "text/css"))
        elif tag == "link" and "icon" in rel:
            self.found.append((attributes["href"], "image/"))
        elif tag == "img":
            self.found.append((attributes["src"], "image/"))
        elif tag == "redoc":
            self.found.append((attributes["spec-url"], "application/json"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            for _, url in INLINE_URL.findall(data):
                self.found.append((url, mimetypes.guess_type(urlsplit(url).path)[0] or "text/html"))


def references_of(page: str) -> list[tuple[str, str]]:
    parser = References()
    parser.feed(page)
    return parser.found


@pytest.fixture(params=list(SERVICES), scope="module")
async def api(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    app = SERVICES[request.param]()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        yield client


@pytest.mark.parametrize("page", DOCS_PAGES)
async def test_every_asset_a_docs_page_loads_is_served_by_the_service_itself(api: httpx.AsyncClient, page: str) -> None:
    response = await api.get(page)
    assert response.status_code == 200
    references = references_of(response.text)
    assert any(kind == "text/javascript" for _, kind in references), "the page loads no script at all"
    assert any(kind == "image/" for _, kind in references), "the page has no favicon"

    elsewhere = [url for url, _ in references if urlsplit(url).scheme or urlsplit(url).netloc]
    assert not elsewhere, f"{page} loads from other hosts: {elsewhere}"
    assert not re.search(r"https?://", response.text), f"{page} names another host"
    for url, expected_type in references:
        asset = await api.get(url)
        assert asset.status_code == 200, f"{page} references {url}, which answers {asset.status_code}"
        assert asset.headers["content-type"].startswith(expected_type), (
            f"{url} is served as {asset.headers['content-type']}, not {expected_type}"
        )


async def test_the_redoc_bundle_finds_its_logo_beside_the_page(api: httpx.AsyncClient) -> None:
    # The ReDoc bundle builds this URL in JavaScript (page path + "/logo-mini.svg") instead of
    # fetching the logo from Redocly's CDN, so the HTML does not name it.
    response = await api.get("/redoc/logo-mini.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")


async def test_swagger_ui_keeps_an_entered_bearer_token_across_reloads(api: httpx.AsyncClient) -> None:
    page = (await api.get("/docs")).text
    assert '"persistAuthorization": true' in page


async def test_the_docs_pages_and_their_assets_are_not_api_operations(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(DOCS_PAGES)]
