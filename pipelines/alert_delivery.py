"""Alerts beyond the daemon's log: each alert POSTed as JSON to a webhook.

`MARKETING_ALERT_WEBHOOK_URL` (a Slack or Teams incoming webhook, a PagerDuty/Opsgenie
bridge, any HTTP endpoint) receives one request per alert:

    {"text": "RUN FAILED: ...", "kind": "run_failure" | "check_failure",
     "severity": "ERROR" | "WARN", "run_id": "...", "job": "..."}

`text` is the line the sensor logs, so a Slack webhook shows it as is. Delivery is tried
three times (1 s, then 2 s apart) on a connection error or a 5xx/429 answer; an alert that
still cannot be delivered is logged as an ERROR on the sensor's tick, so it is never lost
silently, and the sensor goes on (a webhook outage must not stop the other alerts). The URL
carries the webhook's secret: it is never logged or put in metadata.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

ATTEMPTS = 3
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Alert:
    text: str
    kind: str
    severity: str
    run_id: str
    job: str

    def body(self) -> bytes:
        return json.dumps({"text": self.text, "kind": self.kind, "severity": self.severity,
                           "run_id": self.run_id, "job": self.job}).encode()


def deliver(url: str, alert: Alert, *, pause_s: float = 1.0) -> str | None:
    """POST `alert` to `url`; None when delivered, else why not (without the URL)."""
    problem = "not attempted"
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(pause_s * attempt)
        request = urllib.request.Request(url, data=alert.body(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                answer.read()
            return None
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code}"
            if error.code < 500 and error.code != 429:
                return problem  # the webhook refused it: trying again changes nothing
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            problem = f"{type(reason).__name__}: {reason}"
    return f"{problem} after {ATTEMPTS} attempts"
