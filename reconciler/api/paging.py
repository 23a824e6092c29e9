"""Every page of a list endpoint, within bounds: ``Pager`` and its ``PageSource``.

``Pager.pages`` reads a list endpoint through a ``PageSource`` (the client's
GET): it follows ``TotalHits`` when the answer has it; a bare array is read
until an empty page or a page shorter than the longest one before (a server may
cap the page size below the one asked for). A page that repeats the one before
means the server ignores ``page``; more than ``max_pages`` pages or
``max_items`` items means it never stops: both are refused with a DEFINITIVE
``ApiError`` rather than read partly, twice or forever. Pages are handed on as
they arrive, so only one page of JSON is held at a time.

This module must not import ``requests``, must do no I/O of its own (the page
source does) and must not read the items (``reads`` does).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

from reconciler.api.fields import ci_get
from reconciler.errors import ApiError

#: The ``pageSize`` the list calls ask for.
PAGE_SIZE: Final = 100
#: A list read stops with an error past this many pages or items: a server that
#: never stops paging is refused in seconds and in well under 300 MB.
MAX_PAGES: Final = 2_000
MAX_ITEMS: Final = 50_000


class PageSource(Protocol):
    """Where a ``ListReader`` gets its pages (the client: token, retries, errors)."""

    def get_page(self, operation: str, path: str, params: Mapping[str, Any]) -> Any:
        """The JSON of one GET of ``path`` with ``params``; raises ``ApiError``."""
        ...

    def refuse(self, operation: str, path: str, message: str) -> ApiError:
        """The DEFINITIVE error for an answer from ``path`` that cannot be used."""
        ...


class Pager:
    """Reads every page of a list endpoint through a ``PageSource``, within bounds.

    ``page_size`` is the ``pageSize`` asked for; ``max_pages`` and ``max_items``
    bound one read. As thread-safe as the source is.
    """

    def __init__(
        self,
        source: PageSource,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_PAGES,
        max_items: int = MAX_ITEMS,
    ) -> None:
        if min(page_size, max_pages, max_items) < 1:
            raise ValueError("page_size, max_pages and max_items must be at least 1")
        self._source = source
        self._page_size = page_size
        self._max_pages = max_pages
        self._max_items = max_items

    def pages(
        self,
        operation: str,
        path: str,
        filters: Mapping[str, Any],
        *,
        paging: tuple[str, str] = ("page", "pageSize"),
    ) -> Iterator[tuple[int, list[Any]]]:
        """Each page's items with the position of its first, from page 1 to the end.

        Takes ``{Items, TotalHits}`` and a bare array alike (see the module docstring).
        """
        page_name, size_name = paging
        size = self._page_size
        source = self._source
        read = 0
        longest = 0
        previous: list[Any] | None = None
        for page in range(1, self._max_pages + 1):
            data = source.get_page(operation, path, {**filters, page_name: page, size_name: size})
            items, total = _page(data)
            if items is None:
                raise source.refuse(
                    operation, path, f"{operation}: the API answered without a list of Items"
                )
            if _ended(items, total, read, previous, size):
                return
            problem = self._unusable(operation, page, items, total, read, previous)
            if problem is not None:
                raise source.refuse(operation, path, problem)
            yield read, items
            read += len(items)
            previous = items
            if total is not None:
                if read >= total:
                    return
            elif len(items) < longest:
                return
            longest = max(longest, len(items))
        raise source.refuse(
            operation,
            path,
            f"{operation}: stopped after {self._max_pages:,} pages ({read:,} items): the API "
            "kept answering with more; it may not page as documented",
        )

    def _unusable(
        self,
        operation: str,
        page: int,
        items: list[Any],
        total: int | None,
        read: int,
        previous: list[Any] | None,
    ) -> str | None:
        """Why page number ``page`` cannot be read on from (None when it can)."""
        if not items:
            return (
                f"{operation}: page {page} was empty after {read} of the {total} "
                "items TotalHits announced; the list changed while it was read, "
                "or the API does not page as documented"
            )
        if items == previous:
            return (
                f"{operation}: the API answered page {page} with the items of page "
                f"{page - 1}; it does not page as documented"
            )
        if read + len(items) > self._max_items:
            return (
                f"{operation}: stopped at page {page}: the API listed more than "
                f"{self._max_items:,} items, more than one read takes; it may not page "
                "as documented"
            )
        return None


def _ended(
    items: list[Any], total: int | None, read: int, previous: list[Any] | None, size: int
) -> bool:
    """Whether the list ended before this page: an empty page when ``TotalHits`` (if
    any) was reached, or a server that ignores paging and answered the whole list again."""
    if not items:
        return total is None or read >= total
    return items == previous and total is None and len(items) > size


def _page(data: Any) -> tuple[list[Any] | None, int | None]:
    """A page's items and its ``TotalHits`` (None when absent): envelope or bare array."""
    if isinstance(data, list):
        return data, None
    if not isinstance(data, Mapping):
        return None, None
    items = ci_get(data, "Items")
    total = ci_get(data, "TotalHits")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        total = None
    return (items if isinstance(items, list) else None), total
