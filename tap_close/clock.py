"""Close's clock, as its replies tell it (`Date` header), for bounds taken from "now".

Close stamps `date_created`/`date_updated` with its own clock, which may run ahead of or
behind ours. `Date` has whole seconds: a reply dated D left the server at a time in
[D, D + 1), and reached us at local time r after that, so `D - r` never exceeds the true
offset (server minus local). The largest such value seen is the tightest safe estimate:
`now()` is then never later than the server's own now.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from email.utils import parsedate_to_datetime

UTC = dt.timezone.utc


class ServerClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.offset: float | None = None  # seconds: server minus local (a lower bound)

    def observe(self, header: str | None, received: float | None = None) -> None:
        """Note a reply's `Date` header (ignored when absent or malformed)."""
        if not header:
            return
        try:
            server = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        offset = server - (time.time() if received is None else received)
        with self._lock:
            if self.offset is None or offset > self.offset:
                self.offset = offset

    def now(self) -> dt.datetime:
        """The server's time now, never later than its true time (ours until a reply)."""
        return dt.datetime.fromtimestamp(time.time() + (self.offset or 0.0), UTC)
