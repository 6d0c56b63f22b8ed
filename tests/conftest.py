"""Fixtures shared by the test files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, require_browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, list[str]]]:
    """A headless Chromium context (fresh profile) that blocks and records every request off localhost."""
    require_browser()
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def only_localhost(route, request) -> None:
        if request.url.startswith("http://127.0.0.1:"):
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
        )
        context.set_default_timeout(30_000)
        context.route("**/*", only_localhost)
        try:
            yield context, outside
        finally:
            context.close()
