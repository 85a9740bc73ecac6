//! The server survives arbitrary requests: every answer is a proper response (errors as
//! `Status` bodies), nothing hangs, and it keeps serving afterwards.

use kube_sim::testing::fast_config;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEGMENTS: &[&str] = &[
    "api",
    "apis",
    "v1",
    "v2",
    "namespaces",
    "default",
    "demo",
    "pods",
    "services",
    "nodes",
    "watch",
    "status",
    "x",
    "discovery.k8s.io",
    "endpointslices",
    "leases",
    "coordination.k8s.io",
    "origin-0",
    "node-a",
    "%zz",
    "sim",
    "crash",
    "version",
    "openapi",
];
const PREFIXES: &[&str] = &[
    "",
    "/api/v1",
    "/api/v1/namespaces/demo",
    "/api/v1/namespaces/default",
    "/apis/discovery.k8s.io/v1/namespaces/demo",
    "/apis/coordination.k8s.io/v1",
    "/api/v1/watch",
];
const QUERIES: &[&str] = &[
    "",
    "watch=1",
    "labelSelector=a%20in%20(",
    "labelSelector=app%3Dorigin",
    "fieldSelector=x",
    "fieldSelector=spec.nodeName%3Dnode-a",
    "limit=1&continue=abc",
    "limit=1",
    "resourceVersion=-1&watch=true",
    "gracePeriodSeconds=x",
    "gracePeriodSeconds=0",
    "watch=1&resourceVersion=1",
    "sendInitialEvents=true&watch=1",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "",
];
const BODIES: &[&str] = &[
    "",
    "{",
    "{}",
    "[]",
    "null",
    "\"s\"",
    "[{\"op\":\"bogus\"}]",
    r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"fuzz"},"spec":{"containers":[{"name":"c"}]}}"#,
    r#"{"metadata":{"name":"UPPER"}}"#,
    r#"{"metadata":{"resourceVersion":"1"}}"#,
    ":\n- [",
];

async fn exchange(addr: std::net::SocketAddr, req: Vec<u8>) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("server accepts");
    s.write_all(&req).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(kube_sim::testing::WAIT, s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn arbitrary_requests_get_proper_answers_and_the_server_keeps_serving() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = rt.block_on(async {
        let sim = kube_sim::Sim::start(fast_config()).await.unwrap();
        sim.seed_demo().unwrap();
        sim
    });
    let addr = sim.addr();
    let strategy = (
        prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE"]),
        prop::sample::select(PREFIXES.to_vec()),
        prop::collection::vec(prop::sample::select(SEGMENTS.to_vec()), 0..4),
        prop::sample::select(QUERIES.to_vec()),
        prop::sample::select(CONTENT_TYPES.to_vec()),
        prop::sample::select(BODIES.to_vec()),
    );
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(method, prefix, segs, query, ct, body)| {
            let path = format!("{prefix}/{}", segs.join("/"));
            // Every request is bounded in time, watches included.
            let q = if query.is_empty() { "timeoutSeconds=1".to_string() } else { format!("{query}&timeoutSeconds=1") };
            let mut req = format!(
                "{method} {path}?{q} HTTP/1.1\r\nHost: sim\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            if !ct.is_empty() {
                req.push_str(&format!("Content-Type: {ct}\r\n"));
            }
            req.push_str("\r\n");
            req.push_str(body);
            let (code, text) = rt.block_on(exchange(addr, req.into_bytes()));
            prop_assert!(
                [200, 201, 400, 404, 405, 409, 410, 413, 415, 422].contains(&code),
                "{method} {path}?{q} -> {code}: {text}"
            );
            if code >= 400 {
                let status: Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{method} {path}: non-JSON error body {text:?}: {e}")))?;
                prop_assert_eq!(&status["kind"], "Status");
                prop_assert_eq!(status["code"].as_u64(), Some(code as u64));
            }
            Ok(())
        })
        .unwrap();
    let (code, _) = rt.block_on(exchange(
        addr,
        b"GET /version HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n".to_vec(),
    ));
    assert_eq!(code, 200);
    rt.block_on(sim.shutdown());
}
