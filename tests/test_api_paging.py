"""Paging: every item of a list, whatever its shape and page size, and never forever.

The rules (``reconciler.api.reads.ListReader``) with ``responses``; every item of
the simulator's lists in both shapes under a page-size cap below the client's;
and servers that never stop paging or answer unreadable JSON, over real sockets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from reconciler.api import ApiSettings, RetryPolicy
from reconciler.api.client import CrayonClient
from reconciler.api.paging import MAX_ITEMS, MAX_PAGES
from reconciler.errors import ApiError, FailureKind
from reconciler.simulator import LIST_SHAPES, Simulator
from tests.support.hostile_api import HostileApi, endless, subscription

FAKE_URL = "https://api.crayon.test"
SUBSCRIPTIONS_URL = FAKE_URL + "/api/v1/subscriptions/"
ENV = {
    "CRAYON_API_URL": FAKE_URL,
    "CRAYON_CLIENT_ID": "client-1",
    "CRAYON_CLIENT_SECRET": "s3cret-value",
    "CRAYON_USERNAME": "ops@example.com",
    "CRAYON_PASSWORD": "pa55-word",
}
TENANT = 111111
BASIC = "CFQ7TTC0LF8R:0010"


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.add(responses.POST, FAKE_URL + "/api/v1/connect/token", json={"AccessToken": "t"})
        yield mock


def client(env: dict[str, str] = ENV, **kwargs: Any) -> CrayonClient:
    return CrayonClient(ApiSettings.from_env(env), retry=RetryPolicy(max_attempts=1), **kwargs)


def pages(mocked: responses.RequestsMock, *answers: Any) -> None:
    for answer in answers:
        mocked.add(responses.GET, SUBSCRIPTIONS_URL, json=answer)


def items(first: int, count: int) -> list[dict[str, Any]]:
    return [subscription(first + i) for i in range(count)]


def asked_pages(mocked: responses.RequestsMock) -> list[tuple[str, str]]:
    asked = []
    for call in mocked.calls:
        query = parse_qs(urlsplit(str(call.request.url)).query)
        if "page" in query:
            asked.append((query["page"][0], query["pageSize"][0]))
    return asked


# --------------------------------------------------------------------------- the rules


def test_total_hits_is_followed_through_short_pages(mocked: responses.RequestsMock) -> None:
    # A server that caps pages at 2 while TotalHits says 5: short pages are not the end.
    pages(
        mocked,
        {"Items": items(1, 2), "TotalHits": 5},
        {"Items": items(3, 2), "TotalHits": 5},
        {"Items": items(5, 1), "TotalHits": 5},
    )
    read = client(page_size=10).read_subscriptions(TENANT)
    assert [s.id for s in read] == [1, 2, 3, 4, 5]
    assert asked_pages(mocked) == [("1", "10"), ("2", "10"), ("3", "10")]


def test_a_bare_list_is_read_to_an_empty_page(mocked: responses.RequestsMock) -> None:
    pages(mocked, items(1, 3), items(4, 3), [])
    assert [s.id for s in client(page_size=3).read_subscriptions(TENANT)] == list(range(1, 7))


def test_a_bare_list_ends_at_a_page_shorter_than_the_ones_before(
    mocked: responses.RequestsMock,
) -> None:
    # Capped at 50 below the 100 asked for: 50, 50, then 20 ends it without a fourth GET.
    pages(mocked, items(1, 50), items(51, 50), items(101, 20))
    read = client(page_size=100).read_subscriptions(TENANT)
    assert len(read) == 120
    assert len(asked_pages(mocked)) == 3


def test_a_short_first_bare_page_is_not_taken_for_the_last(
    mocked: responses.RequestsMock,
) -> None:
    # Before: 50 of 120 read, and the other 70 seats invisible to read-before-buy.
    pages(mocked, items(1, 50), items(51, 50), items(101, 20))
    assert len(client(page_size=100).list_subscriptions(TENANT)) == 120


def test_an_empty_page_before_total_hits_is_an_error(mocked: responses.RequestsMock) -> None:
    pages(mocked, {"Items": items(1, 2), "TotalHits": 4}, {"Items": [], "TotalHits": 4})
    with pytest.raises(ApiError) as caught:
        client(page_size=2).read_subscriptions(TENANT)
    assert str(caught.value).startswith(
        "read subscriptions: page 2 was empty after 2 of the 4 items TotalHits announced"
    )
    assert caught.value.kind is FailureKind.DEFINITIVE


@pytest.mark.parametrize("envelope", [True, False], ids=["envelope", "bare"])
def test_a_server_that_ignores_the_page_is_refused(
    mocked: responses.RequestsMock, envelope: bool
) -> None:
    page = {"Items": items(1, 2), "TotalHits": 9} if envelope else items(1, 2)
    pages(mocked, page, page)
    with pytest.raises(ApiError) as caught:
        client(page_size=2).read_subscriptions(TENANT)
    assert "answered page 2 with the items of page 1; it does not page as documented" in str(
        caught.value
    )


def test_a_bare_list_longer_than_a_page_repeated_is_the_whole_list(
    mocked: responses.RequestsMock,
) -> None:
    # It ignores page and pageSize alike: the first answer had everything.
    pages(mocked, items(1, 5), items(1, 5))
    assert len(client(page_size=2).read_subscriptions(TENANT)) == 5


def test_too_many_pages_stop_with_an_error(mocked: responses.RequestsMock) -> None:
    pages(mocked, *(items(n, 1) for n in range(1, 4)))
    with pytest.raises(ApiError) as caught:
        client(page_size=1, max_pages=3).read_subscriptions(TENANT)
    assert str(caught.value) == (
        "read subscriptions: stopped after 3 pages (3 items): the API kept answering with "
        "more; it may not page as documented"
    )


def test_too_many_items_stop_with_an_error(mocked: responses.RequestsMock) -> None:
    pages(mocked, items(1, 4), items(5, 4))
    with pytest.raises(ApiError) as caught:
        client(page_size=4, max_items=7).read_subscriptions(TENANT)
    assert str(caught.value).startswith(
        "read subscriptions: stopped at page 2: the API listed more than 7 items"
    )
    assert caught.value.url == SUBSCRIPTIONS_URL


def test_the_bounds_are_tenths_of_a_million() -> None:
    assert (MAX_PAGES, MAX_ITEMS) == (2_000, 50_000)


# --------------------------------------------------------------------------- the simulator


@pytest.fixture(params=LIST_SHAPES)
def capped(
    request: pytest.FixtureRequest, simulator_factory: Callable[..., Simulator]
) -> Simulator:
    """A simulator that answers at most 50 items a page, in either list shape."""
    return simulator_factory(list_shape=request.param, max_page_size=50)


def test_every_item_is_read_below_a_page_size_cap(capped: Simulator) -> None:
    ids = [capped.portal_add_subscription(TENANT, BASIC, n % 7 + 1) for n in range(120)]
    with client(capped.env(), page_size=100) as reader:
        assert [s.id for s in reader.read_subscriptions(TENANT)] == ids
        assert len(reader.read_processed_orders(TENANT)) == 120
        assert len(reader.read_agreement_products(TENANT)) == len(capped.catalog)
    listed = [c.path for c in capped.calls if c.endpoint == "subscriptions"]
    assert len(listed) == 3  # 50 + 50 + 20: the short third page is the last
    assert all("pageSize=100" in path for path in listed)


def test_a_list_of_exactly_full_pages_is_read_to_the_empty_one(capped: Simulator) -> None:
    for _ in range(100):
        capped.portal_add_subscription(TENANT, BASIC, 1)
    with client(capped.env(), page_size=100) as reader:
        assert len(reader.read_subscriptions(TENANT)) == 100
    expected = 3 if capped.list_shape == "bare" else 2  # TotalHits ends it after page 2
    assert capped.count("subscriptions") == expected


# --------------------------------------------------------------------------- hostile servers


@pytest.fixture
def hostile() -> Iterator[Callable[[Any], HostileApi]]:
    started: list[HostileApi] = []

    def start(answer: Any) -> HostileApi:
        started.append(HostileApi(answer))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("envelope", [True, False], ids=["envelope", "bare"])
def test_paging_that_never_ends_is_stopped(
    hostile: Callable[[Any], HostileApi], envelope: bool
) -> None:
    server = hostile(endless(envelope))
    with pytest.raises(ApiError) as caught, client(server.env(), max_items=2_000) as reader:
        reader.read_subscriptions(TENANT)
    assert "stopped at page 21: the API listed more than 2,000 items" in str(caught.value)
    assert server.requests == 22  # the token, then 21 pages


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["endless-bare", "endless-envelope", "endless-single"])
def test_paging_that_never_ends_stops_in_seconds_and_megabytes(mode: str) -> None:
    # The real bounds, in a fresh process: its peak memory is the read's.
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "support" / "hostile_api.py"), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    measured = json.loads(done.stdout)
    assert measured["outcome"].startswith("read subscriptions: stopped ")
    assert measured["seconds"] < 30
    assert measured["peak_mb"] < 300


def nested(depth: int) -> bytes:
    return b'{"Items": ' + b"[" * depth + b"]" * depth + b', "TotalHits": 1}'


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (nested(100_000), "JSON nested deeper than 64 levels"),
        (nested(70), "JSON nested deeper than 64 levels"),
        (b'{"Items": [], "TotalHits": ' + b"9" * 5000 + b"}", "a number of 5000 digits in JSON"),
        (
            b'{"Items": [{"Quantity": 1e999}], "TotalHits": 1}',
            "a number too large for a float (1e999) in JSON",
        ),
        (b'{"Items": [], "TotalHits": NaN}', "NaN, which is not a JSON number"),
        (b"\xff\xfe", "a body that is not UTF-8 text"),
    ],
)
def test_unreadable_json_is_a_clear_definitive_error(
    hostile: Callable[[Any], HostileApi], answer: bytes, problem: str
) -> None:
    server = hostile(lambda method, path, query: (200, answer))
    with pytest.raises(ApiError) as caught, client(server.env()) as reader:
        reader.read_subscriptions(TENANT)
    assert str(caught.value) == f"read subscriptions: the API answered HTTP 200 with {problem}"
    assert caught.value.kind is FailureKind.DEFINITIVE


def test_deep_json_in_an_error_answer_is_shown_as_text(
    hostile: Callable[[Any], HostileApi],
) -> None:
    server = hostile(lambda method, path, query: (400, b"[" * 100_000))
    with pytest.raises(ApiError) as caught, client(server.env()) as reader:
        reader.read_subscriptions(TENANT)
    assert caught.value.status == 400
    assert (caught.value.api_message or "").startswith("[[[[")
