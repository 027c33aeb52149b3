"""Running the live view: the watchers, the hub and the web server, in their own threads.

`tapeflow serve` runs it on its own (the stores must be servers, or the embedded ClickHouse
free); `tapeflow run all --serve` and `tapeflow demo --serve` run it inside the process that
holds the embedded store (chDB opens in one process only; in that process a second client
reads the same store).
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from schemas.catalogue import TOPIC_ALERTS, TOPIC_CANDLES
from schemas.codec import codec_for
from tapeflow.settings import Settings
from tapeflow.web.access import Viewers
from tapeflow.web.app import create_app
from tapeflow.web.events import alert_event, candle_event
from tapeflow.web.live import Hub, StateWatcher, TopicWatcher, Watcher
from tapeflow.web.reads import StoreReads

log = logging.getLogger("tapeflow.web")


class LiveView:
    """The live view of one deployment: start it, then stop it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub = Hub()
        self.reads = StoreReads(settings)
        self.viewers = Viewers.load(settings.access.viewers_file, settings.access.desks)
        codec = codec_for(settings)
        self.watchers: list[Watcher] = [
            StateWatcher(settings, self.hub),
            TopicWatcher(settings, settings.topic(TOPIC_ALERTS), codec, hub=self.hub,
                         expect="RiskAlert", to_event=alert_event),
            TopicWatcher(settings, settings.topic(TOPIC_CANDLES), codec, hub=self.hub,
                         expect="Candle", to_event=candle_event),
        ]
        app = create_app(settings, self.hub, self.reads, self.viewers)
        runtime = settings.runtime
        if not self.viewers.open and runtime.web_host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("the live view listens on %s: put TLS in front of it (viewers "
                        "authenticate with HTTP Basic)", runtime.web_host)
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=runtime.web_host, port=runtime.web_port, log_level="warning",
            access_log=False, lifespan="off"))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.runtime.web_host}:{self.settings.runtime.web_port}"

    def start(self, timeout_s: float = 10.0) -> LiveView:
        """Start the watchers and the server in background threads; return once it listens."""
        for watcher in self.watchers:
            watcher.start()
        self._thread = threading.Thread(target=self._server.run, name="tapeflow-web",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise RuntimeError(f"the live view could not listen on {self.url}")
            time.sleep(0.05)
        log.warning("live view on %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Run in the foreground until Ctrl-C or SIGTERM (uvicorn's own signal handling)."""
        for watcher in self.watchers:
            watcher.start()
        try:
            self._server.run()
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.should_exit = True
        for watcher in self.watchers:
            watcher.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.reads.close()
