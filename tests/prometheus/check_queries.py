#!/usr/bin/env python3
"""Runs every query of the Grafana dashboard and every alert expression against a real
Prometheus that scrapes `origin-discovery dev` (started by scripts/test-observability.sh).

Python standard library only. Before querying it opens one SSE subscription (so subscriber
and push-latency series exist) and makes one more that `--max-subscribers 1` must refuse (so
the rejected-subscribers counter and its alert have something to show). Then it checks:

- every metric name used by the dashboard or the rules is one the controller exposes (or a
  metric still to come, PENDING_METRICS), and every exposed metric has a dashboard panel;
- every dashboard variable query returns values, every panel query and every alert
  expression evaluates without error, and a panel query returns data whenever all the
  metrics it reads have series;
- Prometheus loaded every rule of the rule file and evaluates each one without error;
- the basic series are there (up, origins of demo/origin, the SSE subscriber, its pushes);
- OriginDiscoverySubscribersRejected fires for the refused subscription, annotations rendered.

Exit code 0 when everything holds, 1 otherwise (each failure printed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

#: Metrics the rules and dashboard may use before the controller exposes them (none now:
#: the prober's families are exposed even where no pool is probed, as in `dev`).
PENDING_METRICS: set[str] = set()

#: What Grafana's $__rate_interval stands for here (Prometheus scrapes every second).
RATE_INTERVAL = "20s"

HTTP_TIMEOUT = 10.0  # seconds, per request
POLL = 0.2  # seconds between polls while waiting for a condition


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        print(f"FAIL: {message}", flush=True)
        self.items.append(message)


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:
        return json.loads(resp.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:
        return resp.read().decode()


def wait_for(what: str, timeout: float, check: Callable[[], Any]) -> Any:
    """Polls `check` until it returns something truthy; raises TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, KeyError) as e:  # not up yet, or a half-written answer
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(POLL)


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def api(self, path: str, **params: Any) -> dict:
        """GET /api/v1/<path>; returns the whole answer, errors included (HTTP 400/422)."""
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        try:
            return get(url)
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return json.loads(body)
            except ValueError:
                return {"status": "error", "error": f"HTTP {e.code}: {body[:200]!r}"}

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def values(self, expr: str) -> list[dict]:
        answer = self.query(expr)
        if answer.get("status") != "success":
            raise ValueError(f"{expr}: {answer.get('error')}")
        return answer["data"]["result"]


# ------------------------------------------------------------------ the controller's metrics


def exposed_series_names(metrics_text: str) -> tuple[set[str], set[str]]:
    """(family names, series names) from the `# TYPE` lines of a text exposition: families
    are listed even before they have a series."""
    families: set[str] = set()
    series: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, re.M):
        if kind == "counter":
            base = name[: -len("_total")] if name.endswith("_total") else name
            families.add(base + "_total")
            series.add(base + "_total")
        elif kind == "histogram":
            families.add(name)
            series |= {name + "_bucket", name + "_sum", name + "_count"}
        else:
            families.add(name)
            series.add(name)
    return families, series


def family_of(name: str, families: set[str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return name[: -len(suffix)]
    return name


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\borigin_discovery_[a-z0-9_]+", expr))


# ------------------------------------------------------------------ dashboard


def substitute(expr: str, replacements: dict[str, str]) -> str:
    """Replaces Grafana variables ($name, ${name}); unknown ones are an error."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in replacements:
            raise ValueError(f"unknown (or not yet defined) Grafana variable ${name} in {expr}")
        return replacements[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def dashboard_targets(dashboard: dict) -> list[tuple[str, str]]:
    """[(where, expr)] of every panel target, rows' collapsed panels included."""
    out: list[tuple[str, str]] = []
    stack = list(dashboard["panels"])
    while stack:
        p = stack.pop(0)
        stack.extend(p.get("panels", []))
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
    return out


def query_variables(dashboard: dict) -> list[dict]:
    """The query variables, in dashboard order (later ones may use earlier ones)."""
    return [v for v in dashboard["templating"]["list"] if v["type"] == "query"]


def regex_value(values: list[str]) -> str:
    """Selected values as Grafana sends them to a `=~` matcher: regex-escaped, joined by |
    (backslashes doubled for the PromQL string literal)."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


# ------------------------------------------------------------------ subscribers


class SseSubscription:
    """One SSE subscription held open, its stream drained by a thread."""

    def __init__(self, api: str, path: str) -> None:
        u = urllib.parse.urlsplit(api)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=HTTP_TIMEOUT)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream"})
        self.sock = self.conn.sock  # getresponse() may hand it over to the response
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.events = 0
        self.reader: threading.Thread | None = None
        if self.status == 200:
            self.reader = threading.Thread(target=self._drain, daemon=True)
            self.reader.start()
        else:
            self.body = self.resp.read(4096).decode(errors="replace")
            self.conn.close()

    def _drain(self) -> None:
        try:
            while line := self.resp.readline():
                if line.startswith(b"data:"):
                    self.events += 1
        except OSError:
            pass

    def close(self) -> None:
        if self.reader is not None:
            # Ends the reader's readline() with EOF; closing under it would raise there.
            self.sock.shutdown(socket.SHUT_RDWR)
            self.reader.join(timeout=HTTP_TIMEOUT)
        self.resp.close()
        self.conn.close()


def metric_value(metrics_url: str, series: str) -> float | None:
    for line in get_text(metrics_url).splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", required=True, help="Prometheus base URL")
    ap.add_argument("--api", required=True, help="origin-discovery public API base URL")
    ap.add_argument("--admin", required=True, help="origin-discovery admin base URL")
    ap.add_argument("--job", required=True, help="scrape job name of the controller")
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--rules", required=True, help="the Prometheus rule file loaded")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per wait")
    args = ap.parse_args()

    fail = Failures()
    prom = Prometheus(args.prometheus)
    metrics_url = args.admin.rstrip("/") + "/metrics"
    admin_hostport = urllib.parse.urlsplit(args.admin).netloc
    pool_path = "/v1/pools/demo/origin/events"

    # One admitted subscriber, then one that --max-subscribers 1 refuses.
    sub = SseSubscription(args.api, pool_path)
    if sub.status != 200:
        fail.add(f"SSE subscription got HTTP {sub.status}: {sub.body}")
        return 1
    wait_for("the SSE subscriber in /metrics", args.timeout,
             lambda: metric_value(metrics_url, 'origin_discovery_subscribers{transport="sse"}') == 1)
    refused = SseSubscription(args.api, pool_path)
    if refused.status != 429:
        fail.add(f"second subscriber with --max-subscribers 1: HTTP {refused.status}, want 429")
        refused.close()

    # Metric names against what the controller exposes.
    families, series_names = exposed_series_names(get_text(metrics_url))
    dashboard = json.loads(open(args.dashboard, encoding="utf-8").read())
    targets = dashboard_targets(dashboard)
    variables = query_variables(dashboard)
    # "All" everywhere, as the dashboard opens by default.
    all_values = {"__rate_interval": RATE_INTERVAL}
    all_values |= {v["name"]: v.get("allValue") or ".*" for v in variables}
    used_by_dashboard: set[str] = set()
    for where, expr in targets + [(f"variable {v['name']}", v["definition"]) for v in variables]:
        try:
            substitute(expr, all_values)
        except ValueError as e:
            fail.add(f"{where}: {e}")
        for name in metric_names(expr):
            used_by_dashboard.add(family_of(name, families))
            if name not in series_names and name not in PENDING_METRICS:
                fail.add(f"{where}: {name} is not a metric the controller exposes")
    if fail.items:
        return 1
    for family in sorted(families - used_by_dashboard):
        if family.startswith("origin_discovery_"):
            fail.add(f"metric {family} has no dashboard panel")
    for name in sorted(PENDING_METRICS & series_names):
        print(f"note: {name} is exposed now; drop it from PENDING_METRICS")

    # Scrapes: the target is up and has been scraped a few times.
    target = f'up{{job="{args.job}"}}'
    wait_for(f"{target} == 1 with 3 scrapes", args.timeout, lambda: any(
        float(v["value"][1]) >= 3
        for v in prom.values(f"count_over_time({target}[1m]) and {target} == 1")))

    # Rules: all loaded, each evaluated without error.
    want_alerts = len(re.findall(r"^\s*- alert:", open(args.rules, encoding="utf-8").read(), re.M))

    def rules_evaluated() -> list[dict] | None:
        groups = prom.api("rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"] if r["type"] == "alerting"]
        done = len(rules) == want_alerts and all(
            not r["lastEvaluation"].startswith("0001-") for r in rules)
        return rules if done else None

    rules = wait_for(f"{want_alerts} alerting rules loaded and evaluated", args.timeout,
                     rules_evaluated)
    for r in rules:
        if r["health"] != "ok" or r.get("lastError"):
            fail.add(f"rule {r['name']}: health {r['health']}: {r.get('lastError')}")
    alert_exprs = [(f"alert {r['name']}", r["query"]) for r in rules]
    for where, expr in alert_exprs:
        for name in metric_names(expr):
            if name not in series_names and name not in PENDING_METRICS:
                fail.add(f"{where}: {name} is not a metric the controller exposes")

    # Basic data.
    basics = [
        ('origin_discovery_origins{pool="demo/origin", state="ready"} > 0', "ready origins of demo/origin"),
        ('origin_discovery_origins{pool="demo/origin", state="draining"}', "draining gauge of demo/origin"),
        ('origin_discovery_subscribers{transport="sse"} == 1', "the SSE subscriber"),
        ('origin_discovery_push_latency_seconds_count{transport="sse"} > 0', "pushes to the SSE subscriber"),
        ('origin_discovery_watch_events_total{resource="pods"} > 0', "pod watch events"),
        ('origin_discovery_stale == 0', "not stale"),
    ]
    for expr, what in basics:
        try:
            wait_for(what, args.timeout, lambda e=expr: prom.values(e))
        except TimeoutError as e:
            fail.add(f"{expr}: {e}")

    # Variable queries (label_values(selector, label)) through the series API, in order:
    # each variable gets every value it offers selected (`(a|b)`), as a user would pick them.
    selected = {"__rate_interval": RATE_INTERVAL}
    for v in variables:
        name = v["name"]
        try:
            definition = substitute(v["definition"], selected)
        except ValueError as e:
            fail.add(f"variable {name}: {e}")
            return 1
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition)
        if not m:
            fail.add(f"variable {name}: cannot read {definition!r}")
            return 1
        selector, label = m.groups()
        for mode, sel in (("all", substitute(v["definition"], all_values)), ("selected", definition)):
            sel = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", sel).group(1)
            answer = prom.api(f"label/{label}/values", **{"match[]": sel})
            if answer.get("status") != "success":
                fail.add(f"variable {name} ({mode}): {sel}: {answer.get('error')}")
                return 1
            if not answer["data"]:
                fail.add(f"variable {name} ({mode}): label_values({sel}, {label}) has no values")
                return 1
        selected[name] = regex_value(sorted(answer["data"]))
    print("dashboard variables selected: " + ", ".join(
        f"{k}={v}" for k, v in selected.items() if not k.startswith("__")))

    # Every panel query, with "All" and with the values selected, and every alert expression.
    has_series: dict[str, bool] = {}

    def series_exist(name: str) -> bool:
        if name not in has_series:
            has_series[name] = bool(prom.values(f'count({{__name__="{name}"}})'))
        return has_series[name]

    queries = [(f"{where} (all)", substitute(e, all_values), False) for where, e in targets]
    queries += [(f"{where} (selected)", substitute(e, selected), True) for where, e in targets]
    queries += [(where, e, False) for where, e in alert_exprs]
    with_data = without_data = 0
    for where, expr, want_data in queries:
        answer = prom.query(expr)
        if answer.get("status") != "success":
            fail.add(f"{where}: {expr}: {answer.get('errorType')}: {answer.get('error')}")
            continue
        if answer.get("warnings"):
            print(f"warning: {where}: {answer['warnings']}")
        if not want_data:
            continue
        # Data is expected once every metric the query reads has series (a query on
        # the selected values also catches a misspelt label, which `=~".*"` would hide).
        missing = sorted(n for n in metric_names(expr) if not series_exist(n))
        if missing:
            without_data += 1
            print(f"no series yet ({', '.join(missing)}): {where}")
            continue
        try:
            wait_for(f"data from {where}", args.timeout, lambda e=expr: prom.values(e))
            with_data += 1
        except TimeoutError as e:
            fail.add(f"{where}: {expr}: {e}")

    # The refused subscription makes OriginDiscoverySubscribersRejected fire.
    def rejected_alert() -> dict | None:
        for a in prom.api("alerts")["data"]["alerts"]:
            if a["labels"].get("alertname") == "OriginDiscoverySubscribersRejected" \
                    and a["state"] == "firing":
                return a
        return None

    try:
        alert = wait_for("OriginDiscoverySubscribersRejected to fire", args.timeout, rejected_alert)
        if alert["labels"].get("transport") != "sse" or alert["labels"].get("instance") != admin_hostport:
            fail.add(f"rejected alert labels: {alert['labels']}")
        for key, text in alert["annotations"].items():
            if "{{" in text or "<no value>" in text or not text.strip():
                fail.add(f"rejected alert annotation {key} not rendered: {text!r}")
        if admin_hostport not in alert["annotations"].get("summary", ""):
            fail.add(f"rejected alert summary names no instance: {alert['annotations']}")
    except TimeoutError as e:
        fail.add(str(e))

    print(f"{len(targets)} panel queries run twice (with the values selected: {with_data} "
          f"with data, {without_data} on metrics without series yet), {len(variables)} "
          f"variable queries, {len(alert_exprs)} alert expressions; the SSE subscriber saw "
          f"{sub.events} events")
    sub.close()
    if fail.items:
        print(f"{len(fail.items)} failure(s)")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TimeoutError as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
