"""A real Prometheus for the tests: prometheus + prometheus-node-exporter (Debian packages) and a
small real application exposing http_requests_total and a latency histogram, all on free loopback
ports, scraped every second. ``PromStack.start()`` fails with the reason when it cannot start."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from engine.adapters.net import free_port

INSTALL = "apt-get install -y prometheus prometheus-node-exporter"


class FakeApp:
    """An application's /metrics, with a knob for its 5xx share and its latency."""

    def __init__(self):
        self.error_share = 0.0
        self.latency_s = 0.02
        self.requests = {"200": 0, "500": 0}
        self.buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self._lock = threading.Lock()
        self._rng = random.Random(3)
        self.port = free_port()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = app.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self._stop = threading.Event()
        threading.Thread(target=self._traffic, daemon=True).start()

    def _traffic(self):
        while not self._stop.wait(0.01):
            with self._lock:
                status = "500" if self._rng.random() < self.error_share else "200"
                self.requests[status] += 1
                d = self.latency_s * self._rng.lognormvariate(0, 0.2)
                self.sum += d
                for i, b in enumerate(self.buckets):
                    if d <= b:
                        self.counts[i] += 1
                        break
                else:
                    self.counts[-1] += 1

    def render(self) -> str:
        with self._lock:
            lines = ["# TYPE http_requests_total counter"]
            lines += [f'http_requests_total{{status="{s}"}} {n}' for s, n in self.requests.items()]
            lines.append("# TYPE http_request_duration_seconds histogram")
            cumulative = 0
            for b, n in zip(self.buckets, self.counts, strict=False):
                cumulative += n
                lines.append(f'http_request_duration_seconds_bucket{{le="{b}"}} {cumulative}')
            total = sum(self.counts)
            lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {total}')
            lines.append(f"http_request_duration_seconds_sum {self.sum}")
            lines.append(f"http_request_duration_seconds_count {total}")
            return "\n".join(lines) + "\n"

    def stop(self):
        self._stop.set()
        self.server.shutdown()


class PromStack:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="cc-prom-"))
        self.procs: list[subprocess.Popen] = []
        self.app = None
        self.url = ""

    def start(self) -> PromStack:
        prom = shutil.which("prometheus")
        node = shutil.which("prometheus-node-exporter")
        if not prom or not node:
            raise RuntimeError(f"Prometheus is not installed (need prometheus and prometheus-node-exporter): {INSTALL}")
        self.app = FakeApp()
        node_port, prom_port = free_port(), free_port()
        self.procs.append(subprocess.Popen([node, f"--web.listen-address=127.0.0.1:{node_port}"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        (self.dir / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{node_port}"]}}]
  - job_name: app
    static_configs: [{{targets: ["127.0.0.1:{self.app.port}"]}}]
""")
        log = open(self.dir / "prometheus.log", "w")
        self.procs.append(subprocess.Popen(
            [prom, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=log, stderr=log))
        self.url = f"http://127.0.0.1:{prom_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                self.stop()
                raise RuntimeError(f"Prometheus or node exporter exited at start: {self._log_tail()}")
            try:
                r = httpx.get(f"{self.url}/api/v1/query", params={"query": "up"}, timeout=1)
                up = [s for s in r.json()["data"]["result"] if s["value"][1] == "1"]
                if len(up) == 2:
                    return self
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Prometheus did not scrape both targets in 30 s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return " | ".join((self.dir / "prometheus.log").read_text().splitlines()[-3:])
        except OSError:
            return ""

    def wait_for(self, promql: str, timeout: float = 20.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=2).json()
            result = r["data"]["result"]
            if result and result[0]["value"][1] not in ("NaN", "+Inf", "-Inf"):
                return float(result[0]["value"][1])
            time.sleep(0.5)
        raise TimeoutError(f"no value for {promql}")

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if self.app:
            self.app.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
