"""The MCP server through the SDK's own client: over stdio (a real `infuse serve mcp` subprocess)
and over Streamable HTTP on 127.0.0.1 (a real `infuse serve mcp --transport http`)."""

from __future__ import annotations

import json
import sys

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from serve_support import REPO, subprocess_env


def stdio_client(*args: str) -> Client:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "infuse", "serve", "mcp", *args], env=subprocess_env(),
        cwd=str(REPO),
    )
    return Client(params, read_timeout_seconds=120)


def http_client(url: str, token: str | None = None) -> Client:
    import httpx2  # the MCP SDK's HTTP client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60))
    return Client(streamable_http_client(url + "/mcp", http_client=client), read_timeout_seconds=60)


async def _tour(client: Client, docs_dir, new_file) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"search", "ask", "add", "remove", "list_sources", "eval_summary"} <= set(tools)
    assert tools["search"].output_schema["properties"]["hits"]["type"] == "array"

    found = await client.call_tool("search", {"query": "refund window days", "k": 3})
    assert not found.is_error
    hits = found.structured_content["hits"]
    assert hits and hits[0]["source"].endswith("refund.md")
    assert hits[0]["rank"] == 1 and isinstance(hits[0]["score"], float)

    listed = await client.list_resources()
    uris = {resource.uri for resource in listed.resources}
    assert hits[0]["uri"] in uris
    document = await client.read_resource(hits[0]["uri"])
    payload = json.loads(document.contents[0].text)
    assert "45 days" in payload["text"] and payload["source"].endswith("refund.md")

    added = await client.call_tool("add", {"paths": [str(new_file)]})
    assert not added.is_error, added.content
    assert added.structured_content["added"] == [str(new_file)]
    found = await client.call_tool("search", {"query": "penguins office Antarctica", "k": 1})
    assert found.structured_content["hits"][0]["source"] == str(new_file)
    sources = (await client.call_tool("list_sources", {})).structured_content
    assert sources["count"] == 4

    removed = await client.call_tool("remove", {"targets": [str(new_file)]})
    assert removed.structured_content["removed"] == [str(new_file)]
    sources = (await client.call_tool("list_sources", {})).structured_content
    assert str(new_file) not in {source["source"] for source in sources["sources"]}
    found = await client.call_tool("search", {"query": "penguins office Antarctica", "k": 5})
    assert all(hit["source"] != str(new_file) for hit in found.structured_content["hits"])


def test_stdio_search_read_add_remove(kb_dir, docs_dir):
    new_file = docs_dir / "office.md"
    new_file.write_text("# Office\n\nOur office penguins live in Antarctica.\n")

    async def main():
        async with stdio_client("--kb", str(kb_dir), "--allow-root", str(docs_dir), "--no-assistant") as client:
            await _tour(client, docs_dir, new_file)

    anyio.run(main)


def test_stdio_refuses_paths_outside_roots_and_big_files(kb_dir, docs_dir, tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nThe vault code is 1234.\n")
    (docs_dir / "link.md").symlink_to(outside)
    big = docs_dir / "big.md"
    big.write_text("# Big\n\n" + "word " * 300_000)

    async def main():
        args = ("--kb", str(kb_dir), "--allow-root", str(docs_dir), "--no-assistant", "--max-file-mb", "1")
        async with stdio_client(*args) as client:
            for path, words in [
                ("../secret.md", "outside the allowed roots"),
                (str(outside), "outside the allowed roots"),
                (str(docs_dir / "link.md"), "outside the allowed roots"),
                (str(big), "over the 1,048,576-byte limit per file"),
            ]:
                result = await client.call_tool("add", {"paths": [path]})
                assert result.is_error, path
                assert words in result.content[0].text, result.content[0].text
            sources = (await client.call_tool("list_sources", {})).structured_content
            assert sources["count"] == 3

    anyio.run(main)


def test_stdio_read_only_hides_write_tools(kb_dir, docs_dir):
    async def main():
        async with stdio_client("--kb", str(kb_dir), "--read-only", "--no-assistant") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "search" in names and "list_sources" in names
            assert "add" not in names and "remove" not in names

    anyio.run(main)


def test_http_transport_with_token(kb_dir, docs_dir, tmp_path, start_server):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    new_file = docs_dir / "office.md"
    new_file.write_text("# Office\n\nOur office penguins live in Antarctica.\n")
    server = start_server(
        ["mcp", "--transport", "http", "--kb", str(kb_dir), "--allow-root", str(docs_dir),
         "--no-assistant", "--token-file", str(token_file), "--allowed-host", "assistant.example"],
        token="s3cret-token",
    )
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    assert httpx.post(server.url + "/mcp", json=ping).status_code == 401
    wrong = httpx.post(server.url + "/mcp", json=ping, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "Wrong bearer token" in wrong.text
    # The SDK's Host-header check stays on (DNS rebinding): a foreign Host is refused.
    foreign = httpx.post(server.url + "/mcp", json=ping,
                         headers={"Authorization": "Bearer s3cret-token", "Host": "evil.example"})
    assert foreign.status_code == 421 and "Invalid Host header" in foreign.text
    # a name given with --allowed-host (a proxy in front) passes the Host check
    proxied = httpx.post(server.url + "/mcp", json=ping,
                         headers={"Authorization": "Bearer s3cret-token", "Host": "assistant.example"})
    assert proxied.status_code != 421, proxied.text

    async def main():
        async with http_client(server.url, "s3cret-token") as client:
            await _tour(client, docs_dir, new_file)

    anyio.run(main)


def test_refuses_public_bind_without_token(kb_dir):
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "infuse", "serve", "mcp", "--transport", "http", "--kb", str(kb_dir),
         "--host", "0.0.0.0", "--no-assistant"],
        capture_output=True, text=True, env=subprocess_env(), timeout=60,
    )
    assert done.returncode == 1
    assert "Refusing to listen on 0.0.0.0 without a token" in done.stderr


@pytest.mark.parametrize("header", ["", "Bearer", "Basic czNjcmV0", "Bearer s3cret-tokenX"])
def test_token_matching(header):
    from infuse.serve.auth import token_matches

    assert not token_matches(header, "s3cret-token")
    assert token_matches("Bearer s3cret-token", "s3cret-token")
