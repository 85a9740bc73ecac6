"""Processes for the API tests: `origin-discovery dev` and `run` on free loopback ports, and a
TCP proxy that can cut a controller off its apiserver. Everything started here is stopped
by PID (`Process.stop`, `Proxy.stop`); every wait is bounded by `TIMEOUT`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("ORIGIN_DISCOVERY_BIN", str(ROOT / "target/debug/origin-discovery"))
TIMEOUT = float(os.environ.get("API_TEST_TIMEOUT", "30"))


def wait_until(what: str, predicate, timeout: float = TIMEOUT, interval: float = 0.02):
    """Polls `predicate` until it returns a truthy value (returned), or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 5):
    """(status, JSON body or None)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


class Process:
    """A child process, stopped (SIGTERM, then SIGKILL after 5 s) by `stop`."""

    def __init__(self, args: list[str], log: Path):
        self.log_path = log
        self.log = open(log, "w")
        self.popen = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self):
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def banner(self, label: str) -> str:
        """The value of the banner line `label: value` (dev prints it on stdout)."""

        def find():
            for line in self.lines:
                m = re.match(rf"\s*{re.escape(label)}:\s*(\S+)", line)
                if m:
                    return m.group(1)
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.popen.args} exited: see {self.log_path}")
            return None

        return wait_until(f"the {label!r} banner line", find)

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        self.log.close()


def start_dev(tmp: Path, *extra: str) -> tuple[Process, str, str, Path]:
    """`dev` on free ports: (process, API URL, simulator URL, kubeconfig)."""
    kubeconfig = tmp / "dev.kubeconfig"
    proc = Process(
        [
            BIN, "dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
            "--kubeconfig-out", str(kubeconfig), *extra,
        ],
        tmp / "dev.log",
    )
    try:
        api = proc.banner("API")
        sim = proc.banner("simulator")
        def ready():
            status, body = get_json(f"{api}/v1/pools/demo/origin")
            return status == 200 and any(o["state"] == "ready" for o in body["origins"])

        wait_until("dev to serve a ready origin in demo/origin", ready)
    except BaseException:
        proc.stop()
        raise
    return proc, api, sim, kubeconfig


def start_run(tmp: Path, kubeconfig: Path, *extra: str) -> tuple[Process, str]:
    """`run --kubeconfig` on a free port: (process, API URL)."""
    port = free_port()
    proc = Process(
        [
            BIN, "run", "--kubeconfig", str(kubeconfig), "--listen", f"127.0.0.1:{port}",
            "--admin-listen", "127.0.0.1:0", *extra,
        ],
        tmp / "run.log",
    )
    api = f"http://127.0.0.1:{port}"
    try:
        def ready():
            if proc.popen.poll() is not None:
                raise RuntimeError(f"run exited: see {proc.log_path}")
            return get_json(f"{api}/v1/pools/demo/origin")[0] == 200

        wait_until("run to serve demo/origin", ready)
    except BaseException:
        proc.stop()
        raise
    return proc, api


class Proxy:
    """A loopback TCP proxy to `target` (host, port). `cut()` drops every connection and
    refuses new ones (accepts and closes at once) until `restore()`."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.closed = False
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.open = False
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def restore(self):
        self.open = True

    def stop(self):
        self.closed = True
        self.cut()
        self.listener.close()


def proxied_kubeconfig(kubeconfig: Path, port: int, out: Path):
    """A copy of `kubeconfig` whose cluster server is the proxy on `port`."""
    import yaml

    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"http://127.0.0.1:{port}"
    out.write_text(yaml.safe_dump(config))
