"""Records real push messages from live servers: every kind the API sends.

- `origin-discovery dev --chaos` (origins killed and replaced): over WebSocket a snapshot,
  deltas (upserts, state changes, removals), heartbeats and a pong (after a client ping), and
  the same over Server-Sent Events; and a second pool (`demo/annotated`, out of the chaos's
  reach) whose origin has a URL, a weight and a load (pod annotations), so that every
  optional origin field occurs;
- `stale`: a second controller (`run`) against the same simulator through a TCP proxy that
  the recorder cuts (stale: true) and restores (stale: false);
- `removed`: the Service is deleted through the simulator's REST API.

Each record is `{"source": "dev"|"run", "transport": "websocket"|"sse", "text": <frame>}`
with the frame's exact text. `python tests/api/record_messages.py` rewrites the committed
fixture tests/api/fixtures/messages.jsonl (which the Rust `Message` round-trip test in
src/api/openapi.rs reads); tests/api/test_messages.py records afresh on every run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import websocket

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "messages.jsonl"
POOL = "demo/origin"


class Watch:
    """A WebSocket subscription that keeps every frame it received."""

    def __init__(self, api: str, source: str, records: list, pool: str = POOL):
        url = api.replace("http://", "ws://") + f"/v1/pools/{pool}/watch"
        self.ws = websocket.create_connection(url, timeout=servers.TIMEOUT)
        self.source = source
        self.records = records
        self.seen: list[dict] = []

    def next(self) -> dict:
        text = self.ws.recv()
        self.records.append({"source": self.source, "transport": "websocket", "text": text})
        message = json.loads(text)
        self.seen.append(message)
        return message

    def until(self, what: str, predicate) -> dict:
        deadline = time.monotonic() + servers.TIMEOUT
        while time.monotonic() < deadline:
            message = self.next()
            if predicate(message):
                return message
        raise TimeoutError(f"timed out waiting for {what}")

    def close(self):
        self.ws.close()


def sse_events(api: str, count: int, records: list):
    """The first `count` events of `…/events` (bounded by servers.TIMEOUT)."""
    url = f"{api}/v1/pools/{POOL}/events"
    with urllib.request.urlopen(url, timeout=servers.TIMEOUT) as r:
        assert r.headers["Content-Type"] == "text/event-stream", r.headers
        got = 0
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                records.append({"source": "dev", "transport": "sse", "text": line[len("data: "):]})
                got += 1
                if got == count:
                    return


ANNOTATED = "annotated-0"


def post(sim: str, path: str, obj: dict):
    request = urllib.request.Request(
        f"{sim}{path}",
        data=json.dumps(obj).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=servers.TIMEOUT) as r:
        assert r.status == 201, r.status


def create_annotated_pool(sim: str):
    """Pool `demo/annotated`: a Service and one pod with the URL, weight and load
    annotations (through the simulator); the chaos only touches `app: origin` pods."""
    post(sim, "/api/v1/namespaces/demo/services", {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "annotated",
            "namespace": "demo",
            "labels": {"origin-discovery.io/enabled": "true"},
        },
        "spec": {
            "selector": {"app": "annotated"},
            "ports": [{"name": "ws", "port": 5080, "targetPort": "ws", "protocol": "TCP"}],
        },
    })
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": ANNOTATED,
            "namespace": "demo",
            "labels": {"app": "annotated"},
            "annotations": {
                "origin-discovery.io/url": "wss://annotated.origins.example.com:5443/LiveApp/websocket",
                "origin-discovery.io/weight": "3",
                "origin-discovery.io/load": "0.4",
            },
        },
        "spec": {
            "containers": [{
                "name": "origin",
                "image": "origin-discovery/sim-origin:latest",
                "ports": [{"name": "ws", "containerPort": 5080, "protocol": "TCP"}],
            }],
        },
    }
    post(sim, "/api/v1/namespaces/demo/pods", pod)


def record(tmp: Path) -> list[dict]:
    records: list[dict] = []
    dev, api, sim, kubeconfig = servers.start_dev(
        tmp, "--chaos", "300ms", "--heartbeat-interval", "100ms", "--endpointslice-delay", "200ms"
    )
    proxy = run = None
    try:
        watch = Watch(api, "dev", records)
        first = watch.next()
        assert first["type"] == "snapshot", first
        kinds = lambda: {m["type"] for m in watch.seen}  # noqa: E731
        removals = lambda: [m for m in watch.seen if m["type"] == "delta" and m["remove"]]  # noqa: E731
        draining = lambda: [  # noqa: E731
            m for m in watch.seen
            if m["type"] == "delta" and any(o["state"] == "draining" for o in m["upsert"])
        ]
        watch.until(
            "deltas with a removal and a draining origin, and a heartbeat",
            lambda _: removals() and draining() and "heartbeat" in kinds(),
        )
        create_annotated_pool(sim)
        servers.wait_until(
            "the annotated pool",
            lambda: servers.get_json(f"{api}/v1/pools/demo/annotated")[0] == 200,
        )
        annotated = Watch(api, "dev", records, pool="demo/annotated")
        annotated.until(
            "the annotated origin listed with its URL, weight and load",
            lambda m: any(
                o["id"] == ANNOTATED and {"url", "weight", "load"} <= set(o)
                for o in m.get("origins", []) + m.get("upsert", [])
            ),
        )
        annotated.close()
        watch.ws.send('{"type":"ping"}')
        watch.until("the pong", lambda m: m["type"] == "pong")
        sse_events(api, 3, records)

        # stale: a controller behind a proxy we cut.
        sim_url = urllib.parse.urlparse(sim)
        proxy = servers.Proxy((sim_url.hostname, sim_url.port))
        proxied = tmp / "proxied.kubeconfig"
        servers.proxied_kubeconfig(kubeconfig, proxy.port, proxied)
        run, run_api = servers.start_run(
            tmp, proxied, "--stale-after", "300ms", "--heartbeat-interval", "1s"
        )
        behind = Watch(run_api, "run", records)
        assert behind.next()["type"] == "snapshot"
        proxy.cut()
        behind.until("stale: true", lambda m: m["type"] == "stale" and m["stale"])
        proxy.restore()
        behind.until("stale: false", lambda m: m["type"] == "stale" and not m["stale"])
        behind.close()

        # removed: delete the Service.
        request = urllib.request.Request(
            f"{sim}/api/v1/namespaces/demo/services/origin", method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=servers.TIMEOUT) as r:
            assert r.status == 200, r.status
        watch.until("removed", lambda m: m["type"] == "removed")
        watch.close()
    finally:
        if run:
            run.stop()
        if proxy:
            proxy.stop()
        dev.stop()
    return records


def shrink(records: list[dict]) -> list[dict]:
    """A small fixture that still has every kind and shape: per (source, transport, type),
    the first two frames, plus every delta with a removal or a state change to draining."""
    kept, counts = [], {}
    for r in records:
        m = json.loads(r["text"])
        key = (r["source"], r["transport"], m["type"])
        counts[key] = counts.get(key, 0) + 1
        notable = (m["type"] == "delta" and (
            m["remove"] or any(o["state"] == "draining" for o in m["upsert"])
        )) or any(o["id"] == ANNOTATED for o in m.get("origins", []) + m.get("upsert", []))
        if counts[key] <= 2 or (notable and counts[key] <= 6):
            kept.append(r)
    return kept


def main():
    with tempfile.TemporaryDirectory() as tmp:
        records = shrink(record(Path(tmp)))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    print(f"wrote {len(records)} messages to {FIXTURE.relative_to(servers.ROOT)}")


if __name__ == "__main__":
    main()
