"""The Slack-compatible webhook (docs/runbook.md#pushed-to-the-webhooks): one POST of ``{"text": …}``
that never raises and never shows the webhook's secret path (``redact_webhook``: scheme://host only).
Retries, queueing and auditing are engine/flows/notify.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


def redact_webhook(url: str) -> str:
    """``scheme://host[:port]`` only: a Slack webhook's path is its secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        if not parts.scheme or not host:
            return "<webhook URL>"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<webhook URL>"
    return f"{parts.scheme}://{host}{port}"


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    status: int | None  # the HTTP status, None when there was no answer
    error: str | None  # what went wrong and what to do, with no secret in it
    where: str  # scheme://host
    # Worth another try: nothing was delivered (no connection) or the receiver said "later" (429,
    # 5xx). A timeout after the request went out is not: the message may have been posted.
    retryable: bool = False

    @property
    def message(self) -> str:
        if self.ok:
            return f"posted to {self.where} (HTTP {self.status})"
        return self.error or f"could not post to {self.where}"


def _scrub(text: str, url: str) -> str:
    """Remove the URL and its path from a message we did not write ourselves."""
    out = text.replace(url, redact_webhook(url))
    try:
        parts = urlsplit(url)
        for secret in (parts.path, parts.query, parts.username or "", parts.password or ""):
            if len(secret) > 1:
                out = out.replace(secret, "…")
    except ValueError:
        pass
    return out


def post_webhook(url: str, text: str, timeout: float = 5.0) -> WebhookResult:
    """POST ``{"text": text}`` to a Slack-compatible incoming webhook. Never raises."""
    import httpx

    where = redact_webhook(url)
    fix = "fix integrations.webhook_url in the plan"
    by_hand = "copy the text (c) and post it by hand"
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            resp = client.post(url, json={"text": text}, headers={"User-Agent": "canary-console"})
    except httpx.ConnectTimeout:
        return WebhookResult(False, None, f"could not connect to {where} within {timeout:g} s: nothing was posted. "
                             f"Check the network or proxy from this host, or {by_hand}.", where, retryable=True)
    except httpx.TimeoutException:
        return WebhookResult(False, None, f"{where} did not answer within {timeout:g} s: the message may or may "
                             "not have been posted. Look in the channel before posting again.", where)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        return WebhookResult(False, None, f"the webhook URL is not usable ({where}): {fix} "
                             "(an http:// or https:// URL).", where)
    except httpx.ConnectError as exc:
        why = _scrub(str(exc), url) or exc.__class__.__name__
        return WebhookResult(False, None, f"could not reach {where} ({why}): nothing was posted. Check the network "
                             f"or proxy from this host and {fix}, or {by_hand}.", where, retryable=True)
    except httpx.HTTPError as exc:
        why = _scrub(str(exc), url) or exc.__class__.__name__
        return WebhookResult(False, None, f"posting to {where} failed ({exc.__class__.__name__}: {why}); {by_hand}.",
                             where)
    except Exception as exc:  # noqa: BLE001 - a screen's action must never crash on a post
        return WebhookResult(False, None, f"posting to {where} failed ({exc.__class__.__name__}); {by_hand}.", where)
    status = resp.status_code
    body = _scrub(resp.text.strip().splitlines()[0][:120], url) if resp.text.strip() else ""
    said = f" {body}" if body else ""
    if 200 <= status < 300:
        return WebhookResult(True, status, None, where)
    if 300 <= status < 400:
        to = redact_webhook(resp.headers.get("location", ""))
        return WebhookResult(False, status, f"{where} answered with a redirect (HTTP {status}) to {to}: {fix} "
                             "with the final address.", where)
    if status in (401, 403, 404, 410):
        return WebhookResult(False, status, f"{where} refused the message (HTTP {status}{said}): the webhook is "
                             f"wrong or revoked; {fix}, or {by_hand}.", where)
    if 400 <= status < 500 and status != 429:
        return WebhookResult(False, status, f"{where} rejected the message (HTTP {status}{said}); {by_hand}.",
                             where)
    return WebhookResult(False, status, f"{where} failed to take the message (HTTP {status}{said}): try again in "
                         f"a minute, or {by_hand}.", where, retryable=True)
