"""The fetcher against a real HTTP server on 127.0.0.1: politeness, limits and the address guard."""

from __future__ import annotations

from dataclasses import replace

from scrape_site import FILLER, Response, Site, article

from infuse.scrape.fetch import USER_AGENT, FetchConfig, Fetcher, retry_after_seconds
from infuse.scrape.safety import address_kind


def test_default_refuses_loopback(site):
    site.pages["/"] = Response(article("Home", [FILLER]))
    with Fetcher(FetchConfig(min_delay=0)) as fetcher:
        result = fetcher.fetch(site.url("/"))
    assert not result.ok
    assert "127.0.0.1" in result.skip_reason and "loopback" in result.skip_reason
    assert "--allow-private" in result.skip_reason
    assert site.log == []  # refused before any byte was sent, robots.txt included


def test_redirect_to_loopback_is_refused_at_the_hop(site):
    # A second server on 127.0.0.2 is opened to the fetcher (--allow-network 127.0.0.2/32);
    # it redirects to 127.0.0.1, which the default policy must refuse at the redirect hop.
    front = Site(host="127.0.0.2")
    try:
        front.pages["/jump"] = Response("", status=302, headers={"Location": site.url("/")})
        site.pages["/"] = Response(article("Home", [FILLER]))
        config = FetchConfig(min_delay=0, obey_robots=False, allow_networks=["127.0.0.2/32"])
        with Fetcher(config) as fetcher:
            result = fetcher.fetch(front.url("/jump"))
    finally:
        front.close()
    assert front.paths() == ["/jump"] and site.log == []
    assert result.redirects == [front.url("/jump")]
    assert "127.0.0.1" in result.skip_reason and "loopback" in result.skip_reason


def test_address_kinds():
    assert address_kind("127.0.0.1") == "loopback"
    assert address_kind("10.1.2.3") == "private"
    assert address_kind("169.254.169.254") == "link-local"
    assert address_kind("100.64.0.1") == "carrier-grade NAT"
    assert address_kind("fd00::1") == "unique-local"
    assert address_kind("::ffff:192.168.0.1") == "private"
    assert address_kind("93.184.216.34") is None


def test_robots_disallow_and_user_agent(small_site, fast_config):
    with Fetcher(fast_config) as fetcher:
        secret = fetcher.fetch(small_site.url("/private/secret.html"))
        guide = fetcher.fetch(small_site.url("/guide.html"))
    assert "robots.txt" in secret.skip_reason and "/private/secret.html" in secret.skip_reason
    assert "/private/secret.html" not in small_site.paths()
    assert guide.ok and guide.kind == "html"
    assert all(headers["user-agent"] == USER_AGENT for _path, headers in small_site.log)
    assert small_site.paths().count("/robots.txt") == 1  # cached per origin


def test_crawl_delay_is_a_floor_and_one_request_at_a_time(site):
    site.pages["/robots.txt"] = Response(
        "User-agent: *\nCrawl-delay: 5\n", content_type="text/plain"
    )
    site.pages["/a"] = Response(article("A", [FILLER]))
    waits: list[float] = []
    config = FetchConfig(min_delay=0.5, allow_private=True, adapt_to_latency=False)
    with Fetcher(config, sleep=waits.append) as fetcher:
        fetcher.fetch(site.url("/a"))
        fetcher.fetch(site.url("/a"))
    # robots.txt, then /a (waits out the min delay after robots), then /a after Crawl-delay 5.
    assert len(waits) == 2
    assert 0.3 < waits[0] <= 0.5 and 4.5 < waits[1] <= 5.0


def test_429_waits_retry_after_then_succeeds(site):
    answers = iter(
        [
            Response(
                "slow down", status=429, content_type="text/plain", headers={"Retry-After": "7"}
            ),
            Response(article("Ok", [FILLER])),
        ]
    )
    site.pages["/busy"] = lambda hit, headers: next(answers)
    waits: list[float] = []
    config = FetchConfig(min_delay=0, allow_private=True, obey_robots=False, adapt_to_latency=False)
    with Fetcher(config, sleep=waits.append) as fetcher:
        result = fetcher.fetch(site.url("/busy"))
    assert result.ok and site.hits["/busy"] == 2
    assert waits and 6.5 < waits[0] <= 7.0


def test_retry_after_too_long_skips_with_reason(site, fast_config):
    site.pages["/later"] = Response("", status=503, headers={"Retry-After": "86400"})
    with Fetcher(replace(fast_config, obey_robots=False)) as fetcher:
        result = fetcher.fetch(site.url("/later"))
    assert "Retry-After" in result.skip_reason and site.hits["/later"] == 1
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0) == 0.0


def test_limits_loop_size_bomb_binary_slow(small_site, fast_config):
    config = replace(fast_config, max_bytes=100_000)
    with Fetcher(config) as fetcher:
        loop = fetcher.fetch(small_site.url("/loop1"))
        big = fetcher.fetch(small_site.url("/big.html"))
        bomb = fetcher.fetch(small_site.url("/bomb.html"))
        png = fetcher.fetch(small_site.url("/logo.png"))
        slow = fetcher.fetch(small_site.url("/slow.html"))
    assert loop.skip_reason.startswith("redirect loop") and "/loop2" in loop.skip_reason
    assert "max_bytes=100000" in big.skip_reason
    assert "after decompression" in bomb.skip_reason and bomb.body == b""
    assert "image/png" in png.skip_reason
    assert "timed out" in slow.skip_reason


def test_redirect_cap(site, fast_config):
    for number in range(5):
        site.pages[f"/r{number}"] = Response(
            "", status=301, headers={"Location": f"/r{number + 1}"}
        )
    site.pages["/r5"] = Response(article("End", [FILLER]))
    with Fetcher(replace(fast_config, max_redirects=3, obey_robots=False)) as fetcher:
        capped = fetcher.fetch(site.url("/r0"))
    with Fetcher(replace(fast_config, max_redirects=5, obey_robots=False)) as fetcher:
        followed = fetcher.fetch(site.url("/r0"))
    assert capped.skip_reason == "more than 3 redirects"
    assert followed.ok and followed.final_url == site.url("/r5") and len(followed.redirects) == 5


def test_conditional_request_gets_304(small_site, fast_config):
    with Fetcher(fast_config) as fetcher:
        first = fetcher.fetch(small_site.url("/guide.html"))
        again = fetcher.fetch(small_site.url("/guide.html"), **first.validators())
    assert first.validators() == {"etag": '"guide-v1"'}
    assert again.not_modified and again.skip_reason is None


def test_meta_charset_and_unresolvable_host(site, fast_config):
    html = '<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body>Caf\xe9 cr\xe8me</body></html>'
    site.pages["/latin"] = Response(html.encode("latin-1"), content_type="text/html")
    waits: list[float] = []
    with Fetcher(replace(fast_config, obey_robots=False), sleep=waits.append) as fetcher:
        page = fetcher.fetch(site.url("/latin"))
        nowhere = fetcher.fetch("http://no-such-host.invalid/")
    assert "Café crème" in page.text()
    assert "cannot resolve" in nowhere.skip_reason and waits == []  # not retried


def test_one_request_at_a_time_per_host_across_threads(site, fast_config):
    from concurrent.futures import ThreadPoolExecutor

    for number in range(4):
        site.pages[f"/s{number}"] = Response(article(f"S{number}", [FILLER]), delay_s=0.1)
    with Fetcher(replace(fast_config, obey_robots=False)) as fetcher:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(fetcher.fetch, [site.url(f"/s{n}") for n in range(4)]))
    assert all(result.ok for result in results)
    assert site.max_in_flight == 1
