"""`Renderer`: JavaScript-only pages rendered by a real headless Chromium (Playwright).

Playwright's own browser download cannot run offline, so it drives the system Chromium
(Debian's `chromium` package, `scripts/install-system.sh`) through `executable_path`.
Every request the page makes (scripts, XHR, frames, redirects) passes a route handler that
resolves its host and refuses private addresses unless `allow_private`, the same rule the
fetcher applies (`safety.check_host`). (Chromium resolves the name again after the check;
the fetcher, which connects to the checked address itself, has no such gap.) One browser serves many pages; close it when done.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit

from infuse.closing import Closing
from infuse.errors import ConfigError
from infuse.scrape.fetch import USER_AGENT
from infuse.scrape.safety import AddressRefused, check_host

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def find_chromium(path: str | None = None) -> str:
    """The Chromium binary to drive; ConfigError naming the install command when none is found."""
    for candidate in (
        ([path] if path else []) + list(CHROMIUM_PATHS) + [shutil.which("chromium") or ""]
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigError(
        "No Chromium found for --render (looked in /usr/bin/chromium). "
        "Install it with `apt-get install -y chromium` (scripts/install-system.sh), or pass --render never."
    )


class Renderer(Closing):
    """A headless Chromium that renders pages to HTML after their scripts ran."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allow_networks: tuple[str, ...] = (),
        timeout_s: float = 30.0,
        executable_path: str | None = None,
        user_agent: str = USER_AGENT,
    ):
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as error:
            raise ConfigError(
                "Rendering needs Playwright: pip install playwright (no browser download needed)."
            ) from error
        self.allow_private = allow_private
        self.allow_networks = tuple(allow_networks)
        self.timeout_ms = int(timeout_s * 1000)
        self.refused: list[str] = []  # requests the guard stopped, with the reason
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=find_chromium(executable_path),
                headless=True,
                args=["--no-sandbox", "--disable-dev-shm-usage"],
            )
            self._context = self._browser.new_context(
                user_agent=user_agent, service_workers="block"
            )
            self._context.route("**/*", self._guard)
        except BaseException:
            self._playwright.stop()
            raise

    def _guard(self, route, request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            route.continue_()
            return
        if parts.scheme not in ("http", "https"):
            self.refused.append(f"{request.url}: scheme {parts.scheme} not allowed")
            route.abort("blockedbyclient")
            return
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            check_host(
                parts.hostname or "",
                port,
                allow_private=self.allow_private,
                allow_networks=self.allow_networks,
            )
        except (AddressRefused, OSError) as error:
            self.refused.append(f"{request.url}: {error}")
            route.abort("blockedbyclient")
            return
        route.continue_()

    def render(self, url: str) -> str:
        """The page's HTML after its scripts ran (network idle, or the timeout)."""
        page = self._context.new_page()
        try:
            try:
                page.goto(url, wait_until="networkidle", timeout=self.timeout_ms)
            except Exception as error:  # a timeout still leaves what rendered so far
                if "Timeout" not in type(error).__name__:
                    raise
            return page.content()
        finally:
            page.close()

    def close(self) -> None:
        try:
            self._context.close()
            self._browser.close()
        finally:
            self._playwright.stop()
