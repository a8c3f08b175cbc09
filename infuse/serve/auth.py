"""Bearer-token check for every HTTP route but the open ones (`/health`, the web page's files).

The token is compared with `hmac.compare_digest` (constant time), so response timing does not
reveal how much of a guessed token was right. A missing or wrong token gets 401 with
`WWW-Authenticate: Bearer`, in the OpenAI error shape so API clients show the message.
"""

from __future__ import annotations

import hmac
import json

OPEN_PATHS = ("/health",)


def token_matches(header: str | None, token: str) -> bool:
    """True when `header` is `Bearer <token>` (constant-time comparison of the token)."""
    if not header or not header.lower().startswith("bearer "):
        return False
    given = header[7:].strip().encode("utf-8")
    return hmac.compare_digest(given, token.encode("utf-8"))


class BearerTokenMiddleware:
    """ASGI middleware: HTTP requests outside `open_paths` need `Authorization: Bearer <token>`."""

    def __init__(self, app, token: str, open_paths: tuple[str, ...] = OPEN_PATHS):
        self.app = app
        self.token = token
        self.open_paths = open_paths
        # Paths served to a browser without a token (the web page) - everything but the APIs.
        self.protected_prefixes = ("/v1", "/mcp", "/ready", "/api")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self._protected(scope["path"]):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        header = headers.get(b"authorization", b"").decode("latin-1")
        if token_matches(header, self.token):
            return await self.app(scope, receive, send)
        message = "Missing bearer token." if not header else "Wrong bearer token."
        body = json.dumps(
            {"error": {"message": f"{message} Send `Authorization: Bearer <token>` with the token from --token-file.",
                       "type": "authentication_error", "code": "invalid_api_key"}}
        ).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="infuse"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _protected(self, path: str) -> bool:
        if path in self.open_paths:
            return False
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.protected_prefixes)
