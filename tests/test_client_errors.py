"""Errors that say where: what a first-time user sees when a URL in the configuration is wrong.

WHY (the "first real use" issue): "could not connect (ConnectError: All connection attempts failed)" and a
bare "not found (HTTP 404)" left the user guessing which of three URLs was wrong. Now a failed connection
names the host and port it tried, and a 404 from a configured URL that does not end as RunPod's do names
the setting to fix, by the exact names watchdog/config.py reads (checked here against the config module
itself, so the message cannot drift from it). Messages stay short and never hold the key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from watchdog.client import RunPodClient
from watchdog.config import Secret, default_config
from watchdog.errors import ConfigError, RunPodError, RunPodNotFound, RunPodUnavailable

API_KEY = "rpa_ERRSECRET_8e4d1a6b2c9f7035"
URLS = {
    "graphql_url": "http://127.0.0.1:8403/graphql",
    "rest_url": "http://127.0.0.1:8401/v2",
    "runtime_url": "http://localhost:8402/v2",
}
CALLS: dict[str, Callable[[RunPodClient], Awaitable[Any]]] = {
    "rest": lambda c: c.list_endpoints(),
    "rest stream": lambda c: c.worker_logs("ep1", "w1"),
    "runtime": lambda c: c.health("ep1"),
    "graphql": lambda c: c.account_spend(),
}


def client(handler: Callable[[httpx.Request], httpx.Response], **urls: str) -> RunPodClient:
    return RunPodClient(
        api_key=API_KEY,
        transport=httpx.MockTransport(handler),
        max_retries=0,
        **{**URLS, **urls},  # type: ignore[arg-type]
    )


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("All connection attempts failed")


def not_found(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"error": f"no such route: {request.url.path}"})


async def failure(api: RunPodClient, call: str, expected: type[RunPodError]) -> str:
    async with api:
        with pytest.raises(expected) as caught:
            await CALLS[call](api)
    text = str(caught.value)
    assert API_KEY not in text and API_KEY not in repr(caught.value)
    return text


@pytest.mark.parametrize(
    ("call", "urls", "where"),
    [
        ("rest", {}, "127.0.0.1:8401"),
        ("rest stream", {}, "127.0.0.1:8401"),
        ("runtime", {}, "localhost:8402"),
        ("graphql", {}, "127.0.0.1:8403"),
        ("rest", {"rest_url": "https://localhost/v2"}, "localhost:443"),
        ("runtime", {"runtime_url": "http://localhost/v2"}, "localhost:80"),
        ("rest", {"rest_url": "http://[::1]:8080/v2"}, "[::1]:8080"),
        ("rest", {"rest_url": f"http://user:{API_KEY}@127.0.0.1:8401/v2"}, "127.0.0.1:8401"),
    ],
)
async def test_a_connection_error_names_host_and_port(call: str, urls: dict[str, str], where: str) -> None:
    text = await failure(client(refuse, **urls), call, RunPodUnavailable)
    assert f"could not connect to {where} (ConnectError: All connection attempts failed)" in text
    assert len(text) < 200


async def test_a_dropped_connection_names_host_and_port_too() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer")

    text = await failure(client(drop), "runtime", RunPodUnavailable)
    assert "connection to localhost:8402 failed (ReadError: connection reset by peer)" in text


@pytest.mark.parametrize(
    ("call", "urls", "hint"),
    [
        ("rest", {"rest_url": "http://127.0.0.1:8401"}, "check runpod.rest_url or RUNPOD_REST_API_URL"),
        (
            "rest stream",
            {"rest_url": "http://127.0.0.1:8401/api"},
            "check runpod.rest_url or RUNPOD_REST_API_URL",
        ),
        (
            "runtime",
            {"runtime_url": "http://localhost:8402"},
            "check runpod.runtime_url or RUNPOD_ENDPOINT_BASE_URL",
        ),
        ("graphql", {"graphql_url": "http://127.0.0.1:8403/"}, "check runpod.graphql_url"),
    ],
)
async def test_a_404_from_a_url_not_ending_like_runpods_names_the_setting(
    call: str, urls: dict[str, str], hint: str
) -> None:
    text = await failure(client(not_found, **urls), call, RunPodNotFound)
    assert text.endswith(hint) and "does not end in /" in text
    assert len(text) < 300


@pytest.mark.parametrize("call", sorted(CALLS))
async def test_a_404_from_well_formed_urls_is_a_plain_not_found(call: str) -> None:
    text = await failure(client(not_found), call, RunPodNotFound)
    assert "check runpod" not in text and "not found (HTTP 404)" in text


@pytest.mark.parametrize(
    ("variable", "attribute"),
    [("RUNPOD_REST_API_URL", "rest_url"), ("RUNPOD_ENDPOINT_BASE_URL", "runtime_url")],
)
async def test_the_settings_named_are_the_ones_the_config_reads(variable: str, attribute: str) -> None:
    """A user who sets the variable named in the message without /v2 gets that very message."""
    env = {
        "RUNPOD_API_BASE_URL": "http://127.0.0.1:8499",
        "RUNPOD_REST_API_URL": "http://127.0.0.1:8499/v2",
        "RUNPOD_ENDPOINT_BASE_URL": "http://127.0.0.1:8499/v2",
    }
    config = default_config(env={**env, variable: "http://127.0.0.1:8499"})
    assert getattr(config.runpod, attribute) == "http://127.0.0.1:8499"  # the variable sets that key
    assert hasattr(type(config.runpod), attribute)
    api = RunPodClient.from_config(config.runpod, Secret(API_KEY), transport=httpx.MockTransport(not_found))
    text = await failure(api, "rest" if attribute == "rest_url" else "runtime", RunPodNotFound)
    assert f"check runpod.{attribute} or {variable}" in text


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/v2", "http://127.0.0.1:port/v2", "http://:8080/v2"])
def test_a_url_with_a_bad_port_or_no_host_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        client(refuse, rest_url=url)
