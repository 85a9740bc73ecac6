//! The operator CLI end to end: the real binary's `get`, `pick` and `watch` against a real
//! `origin-discovery dev`, every output format, and its exit codes (0 ok, 1 server or
//! transport error, 2 usage, 3 unknown pool; src/cli/mod.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_origin-discovery");
const WAIT: Duration = Duration::from_secs(30);

/// Kills the child on drop, so no test leaves a process behind.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child's stdout lines, read on a thread.
fn lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

fn next_line(rx: &Receiver<String>, what: &str) -> String {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

struct Dev {
    _proc: Proc,
    api: String,
    sim: String,
    _dir: tempfile::TempDir,
}

fn start_dev() -> Dev {
    start_dev_with(&[])
}

/// `dev` on free ports with `extra` flags.
fn start_dev_with(extra: &[&str]) -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(BIN)
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(extra)
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let proc = Proc(child);
    let (mut api, mut sim) = (None, None);
    while api.is_none() || sim.is_none() {
        let line = next_line(&rx, "the dev banner");
        let line = line.trim();
        if let Some(url) = line.strip_prefix("API:") {
            api = Some(url.trim().to_string());
        }
        if let Some(url) = line.strip_prefix("simulator:") {
            sim = Some(url.trim().to_string());
        }
    }
    let dev = Dev {
        _proc: proc,
        api: api.unwrap(),
        sim: sim.unwrap(),
        _dir: dir,
    };
    let deadline = Instant::now() + WAIT;
    let ready = |body: &str| {
        serde_json::from_str::<Value>(body).is_ok_and(|v| {
            v["origins"]
                .as_array()
                .is_some_and(|o| o.iter().filter(|o| o["state"] == "ready").count() == 3)
        })
    };
    while !ready(&request("GET", &format!("{}/v1/pools/demo/origin", dev.api)).1) {
        assert!(
            Instant::now() < deadline,
            "dev never served 3 ready origins"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    dev
}

/// A minimal HTTP/1.1 request on loopback: (status, body).
fn request(method: &str, url: &str) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut stream) = TcpStream::connect(host) else {
        return (0, String::new());
    };
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `watch demo/origin -o json` against `api`, and its stdout lines.
fn watch_json(api: &str) -> (Proc, Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["watch", "demo/origin", "-o", "json", "--server", api])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    (Proc(child), rx)
}

/// The exit status of `p`, which must exit within [`WAIT`] (polled, not slept on).
fn exited(p: &mut Proc, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cli(args: &[&str], server: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env("ORIGIN_DISCOVERY_SERVER", server)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Exit code and the one stderr line of a failed command.
fn failure(out: &Output) -> (i32, String) {
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap(), stderr.trim_end().to_string())
}

#[test]
fn get_and_pick_print_tables_wide_tables_and_json() {
    let dev = start_dev();
    let s = &dev.api;

    let table = stdout(&cli(&["get", "pools"], s));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(columns(rows[0]), ["POOL", "REVISION", "READY", "DRAINING"]);
    let row = columns(rows[1]);
    assert_eq!(
        (row[0], row[2], row[3]),
        ("demo/origin", "3", "0"),
        "{table}"
    );
    let json: Value =
        serde_json::from_str(&stdout(&cli(&["get", "pools", "-o", "json"], s))).unwrap();
    assert_eq!(json["pools"][0]["pool"], "demo/origin");

    let table = stdout(&cli(&["get", "origins", "demo/origin"], s));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        columns(rows[0]),
        ["ID", "STATE", "ZONE", "NODE", "ADDRESS", "URL", "AGE"]
    );
    assert_eq!(rows.len(), 4, "{table}");
    for row in &rows[1..] {
        let c = columns(row);
        assert_eq!(c.len(), 7, "{row}");
        assert!(c[0].starts_with("origin-"), "{row}");
        assert_eq!(c[1], "ready");
        assert!(c[4].ends_with(":5080"), "{row}");
        assert!(c[6].ends_with('s') || c[6].ends_with('m'), "{row}");
    }
    // The columns line up like kubectl's: every row's STATE starts where the header's does.
    let at = rows[0].find("STATE").unwrap();
    assert!(
        rows[1..].iter().all(|r| &r[at..at + 5] == "ready"),
        "{table}"
    );

    let wide = stdout(&cli(&["get", "origins", "demo/origin", "-o", "wide"], s));
    assert!(columns(wide.lines().next().unwrap()).ends_with(&["AGE", "WEIGHT", "LOAD", "SINCE"]));
    let wide = stdout(&cli(
        &["pick", "demo/origin", "--key", "k", "-o", "wide"],
        s,
    ));
    assert!(columns(wide.lines().next().unwrap()).ends_with(&["AGE", "WEIGHT", "LOAD", "SINCE"]));
    let json: Value = serde_json::from_str(&stdout(&cli(
        &["get", "origins", "demo/origin", "-o", "json"],
        s,
    )))
    .unwrap();
    assert_eq!(json["pool"], "demo/origin");
    assert_eq!(json["origins"].as_array().unwrap().len(), 3);

    // --server wins over the environment.
    let out = Command::new(BIN)
        .args(["pick", "demo/origin", "--key", "stream-42", "--count", "2"])
        .args(["-o", "json", "--server", s])
        .env("ORIGIN_DISCOVERY_SERVER", "http://127.0.0.1:1")
        .output()
        .unwrap();
    let pick: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let (status, body) = request(
        "GET",
        &format!("{s}/v1/pools/demo/origin/pick?key=stream-42&count=2"),
    );
    assert_eq!(status, 200);
    let api: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        pick["targets"], api["targets"],
        "the CLI shows the API's ranking"
    );
    assert_eq!(pick["targets"].as_array().unwrap().len(), 2);

    let first = pick["targets"][0]["id"].as_str().unwrap().to_string();
    let table = stdout(&cli(
        &[
            "pick",
            "demo/origin",
            "--key",
            "stream-42",
            "--exclude",
            &first,
        ],
        s,
    ));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        columns(rows[0]),
        ["RANK", "ID", "ZONE", "NODE", "ADDRESS", "URL"]
    );
    assert_eq!(rows.len(), 3, "3 origins, one excluded: {table}");
    assert_eq!(
        columns(rows[1])[..2],
        ["1", pick["targets"][1]["id"].as_str().unwrap()]
    );
    assert!(!table.contains(&first), "{table}");
}

#[test]
fn watch_prints_each_change_as_it_arrives_with_revision_and_lag_and_exits_3_on_removal() {
    let dev = start_dev();
    let (mut watch, rx) = watch_json(&dev.api);
    let first: Value = serde_json::from_str(&next_line(&rx, "the snapshot line")).unwrap();
    assert_eq!(first["message"]["type"], "snapshot");
    assert_eq!(first["lag_ms"], Value::Null);
    let revision = first["revision"].as_u64().unwrap();

    // A graceful delete: origin-0 turns draining, ahead of the EndpointSlice.
    let pod = format!("{}/api/v1/namespaces/demo/pods/origin-0", dev.sim);
    assert_eq!(request("DELETE", &pod).0, 200);
    let line: Value = loop {
        let line: Value = serde_json::from_str(&next_line(&rx, "the delete's delta")).unwrap();
        let ids: Vec<&str> = line["message"]["upsert"]
            .as_array()
            .map(|u| u.iter().filter_map(|o| o["id"].as_str()).collect())
            .unwrap_or_default();
        if ids.contains(&"origin-0") {
            break line;
        }
    };
    assert_eq!(line["message"]["type"], "delta");
    assert!(line["revision"].as_u64().unwrap() > revision);
    let lag = line["lag_ms"]
        .as_i64()
        .expect("a delta with upserts has a lag");
    // Same host, same clock: the lag is the real push path (a few ms), never negative.
    assert!((0..2_000).contains(&lag), "lag {lag} ms");
    let origin0 = line["message"]["upsert"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "origin-0")
        .unwrap();
    assert_eq!(origin0["state"], "draining");
    println!("watch: the delete reached the CLI {lag} ms after the controller saw it");

    // A crash: origin-1 removed, a delta with nothing upserted, dated all the same.
    let crash = format!("{}/sim/v1/namespaces/demo/pods/origin-1/crash", dev.sim);
    assert_eq!(request("POST", &crash).0, 200);
    let line: Value = loop {
        let line: Value = serde_json::from_str(&next_line(&rx, "the crash's delta")).unwrap();
        let removes_it = line["message"]["remove"]
            .as_array()
            .is_some_and(|r| r.iter().any(|id| id == "origin-1"));
        if removes_it {
            break line;
        }
    };
    let lag = line["lag_ms"].as_i64().expect("a removal has a lag");
    assert!((0..2_000).contains(&lag), "removal lag {lag} ms");

    // The Service goes away: one `removed` line, then exit 3.
    let service = format!("{}/api/v1/namespaces/demo/services/origin", dev.sim);
    assert_eq!(request("DELETE", &service).0, 200);
    let removed = loop {
        let line: Value = serde_json::from_str(&next_line(&rx, "the removal")).unwrap();
        if line["message"]["type"] == "removed" {
            break line;
        }
    };
    assert_eq!(removed["message"]["pool"], "demo/origin");
    let status = exited(&mut watch, "watch did not exit");
    assert_eq!(status.code(), Some(3));
    let mut stderr = String::new();
    watch
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(stderr.trim_end(), "error: pool demo/origin was removed");
}

#[test]
fn watch_tables_have_a_header_and_a_snapshot_line() {
    let dev = start_dev();
    let mut child = Command::new(BIN)
        .args(["watch", "demo/origin", "--server", &dev.api])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let _watch = Proc(child);
    let header = next_line(&rx, "the header");
    assert_eq!(columns(&header), ["TIME", "REVISION", "LAG", "EVENT"]);
    let snapshot = next_line(&rx, "the snapshot line");
    assert!(
        snapshot.ends_with("snapshot: 3 origins (3 ready, 0 draining)"),
        "{snapshot}"
    );
    assert_eq!(columns(&snapshot)[2], "-", "{snapshot}");
}

#[test]
fn errors_are_one_line_with_documented_exit_codes() {
    let dev = start_dev();
    let s = dev.api.as_str();
    // 3: unknown pool, for every command.
    for args in [
        &["get", "origins", "demo/nope"][..],
        &["pick", "demo/nope", "--key", "k"],
        &["watch", "demo/nope"],
    ] {
        let (code, line) = failure(&cli(args, s));
        assert_eq!(
            (code, line.as_str()),
            (3, "error: unknown pool demo/nope"),
            "{args:?}"
        );
    }
    // 2: bad arguments, caught locally or by the server (an oversized key).
    let long_key = "k".repeat(2000);
    for args in [
        &["get", "origins", "Not/a/pool"][..],
        &["get", "origins"],
        &["get", "nodes"],
        &["pick", "demo/origin"],
        &["pick", "demo/origin", "--key", "k", "--count", "0"],
        &["get", "pools", "-o", "yaml"],
        &["get", "pools", "--server", "ftp://127.0.0.1"],
        &["get", "pools", "--server", "https://127.0.0.1"],
        &["pick", "demo/origin", "--key", &long_key],
    ] {
        let (code, line) = failure(&cli(args, s));
        assert_eq!(code, 2, "{args:?}: {line}");
    }
    // 1: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("http://127.0.0.1:{port}");
    for args in [&["get", "pools"][..], &["watch", "demo/origin"]] {
        let (code, line) = failure(&cli(args, &dead));
        assert_eq!(code, 1, "{args:?}: {line}");
        assert!(
            line.starts_with(&format!("error: cannot reach {dead}")),
            "{line}"
        );
        assert!(line.to_lowercase().contains("refused"), "{line}");
    }
    // 1: a server that is not origin-discovery's public API (the simulator).
    let (code, line) = failure(&cli(&["get", "pools"], &dev.sim));
    assert_eq!(code, 1, "{line}");
}

#[test]
fn watch_exits_4_when_the_server_is_full_and_0_on_ctrl_c() {
    let dev = start_dev_with(&["--max-subscribers", "1"]);
    let (mut first, rx) = watch_json(&dev.api);
    let snapshot: Value = serde_json::from_str(&next_line(&rx, "the snapshot line")).unwrap();
    assert_eq!(snapshot["message"]["type"], "snapshot");
    // The only subscriber slot is taken: a second watch is refused (429) and exits 4.
    // (Bounded by coreutils' timeout: were it admitted, it would watch forever.)
    let out = Command::new("timeout")
        .args(["20", BIN, "watch", "demo/origin", "--server", &dev.api])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: the server is at --max-subscribers (HTTP 429 too_many_subscribers): retry later"
    );
    // Ctrl-C ends the first one cleanly: exit 0.
    let pid = first.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = exited(&mut first, "watch did not exit on SIGINT");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_server_that_never_answers_is_cut_at_the_request_timeout_with_exit_1() {
    // Accepts the connection (the kernel does, from the backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = format!("http://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let out = cli(&["get", "pools", "--request-timeout", "500ms"], &server);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("did not answer within 500ms (--request-timeout)"),
        "{stderr}"
    );
    assert!(took < WAIT, "cut after {took:?}");
    drop(silent);
}
