"""What the HTTP clients (Zivver's, Microsoft's) share: how long a server asks to wait, and
how long to back off when it does not say."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

import httpx


def retry_after(
    response: httpx.Response, headers: tuple[str, ...] = ("Retry-After",)
) -> float | None:
    """Seconds to wait from the first of ``headers`` that holds a number of seconds or an
    HTTP date; None when none does."""
    for header in headers:
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            continue
    return None


def backoff(base: float, attempt: int, cap: float = 30.0) -> float:
    """The wait before retry ``attempt`` (0 for the first): doubling from ``base`` up to
    ``cap``, jittered by ±25 % so that clients that failed together do not return together."""
    return min(cap, base * 2**attempt) * (0.75 + random.random() / 2)


def certificate_problem(error: Exception) -> bool:
    """Whether a transport error is a TLS certificate that could not be verified."""
    text = str(error)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower()
