"""The values sets the chart tests render: the defaults, one per option, and everything."""

from __future__ import annotations

from typing import Any

#: Values sets every structural test runs over: the defaults plus one render per option,
#: and one with everything on at once.
MATRIX: dict[str, dict[str, Any]] = {
    "defaults": {},
    "single-namespace": {"watchNamespace": "live"},
    "node-signals": {"nodeSignals": {"enabled": True}},
    "single-namespace-node-signals": {"watchNamespace": "live", "nodeSignals": {"enabled": True}},
    "service-monitor": {
        "serviceMonitor": {
            "enabled": True,
            "labels": {"release": "kube-prometheus-stack"},
            "metricRelabelings": [{"action": "drop", "regex": "go_.*", "sourceLabels": ["__name__"]}],
        }
    },
    "ingress": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
                "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
                "nginx.ingress.kubernetes.io/proxy-buffering": "off",
            },
            "hosts": [
                {"host": "discovery.example.com", "paths": [{"path": "/v1", "pathType": "Prefix"}]}
            ],
            "tls": [{"secretName": "discovery-tls", "hosts": ["discovery.example.com"]}],
        }
    },
    "prometheus-rule": {
        "prometheusRule": {
            "enabled": True,
            "additionalLabels": {"release": "kube-prometheus-stack"},
            "pushLatencyP99Seconds": 0.25,
        }
    },
    "grafana-dashboard": {
        "grafanaDashboard": {
            "enabled": True,
            "additionalLabels": {"team": "media"},
            "annotations": {"grafana_folder": "Media"},
        }
    },
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "adminFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
            "egress": [{"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}],
        }
    },
    "custom-flags": {
        "services": ["live/origin", "vod/edge"],
        "podSelector": "app.kubernetes.io/name in (antmedia,srs)",
        "staleAfter": "1m",
        "heartbeatInterval": "2s",
        "nodeSignals": {"enabled": True, "leaseGrace": "15s"},
        "maxSubscribers": 50000,
        "maxSubscribersPerIp": 200,
        "trustedProxies": ["10.0.0.0/8", "fd00::/8"],
        "forwardedHeader": "forwarded",
        "maxConnections": 60000,
        "headerReadTimeout": "5s",
        "maxHeaderBytes": "32KiB",
        "writeTimeout": "10s",
        "deltaLog": 4096,
        "probes": {"default": "http", "interval": "1s", "timeout": "300ms", "failures": 3,
                   "successes": 2, "panicThreshold": 75},
        "corsAllowOrigins": ["https://player.example.com", "*"],
        "shutdownTimeout": "20s",
        "terminationGracePeriodSeconds": 45,
        "preStopSleepSeconds": 5,
        "logLevel": "origin_discovery=debug,info",
        "logFormat": "text",
        "extraArgs": ["--kubeconfig=/etc/origin-discovery/kubeconfig"],
        "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
        "ports": {"http": 8081, "admin": 9091},
        "service": {"type": "LoadBalancer", "port": 80, "adminPort": 9090,
                    "externalTrafficPolicy": "Local"},
        "podDisruptionBudget": {"maxUnavailable": 1},
        "image": {"digest": "sha256:" + "a" * 64},
    },
}

#: Everything at once (option interactions), single-namespace mode with node signals.
MATRIX["everything"] = {
    **MATRIX["custom-flags"],
    **MATRIX["service-monitor"],
    **MATRIX["ingress"],
    **MATRIX["network-policy"],
    **MATRIX["prometheus-rule"],
    **MATRIX["grafana-dashboard"],
    "watchNamespace": "live",
    "services": ["live/origin", "live/backup"],  # must lie inside watchNamespace
    "replicaCount": 3,
}
