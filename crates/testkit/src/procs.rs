//! Finding and starting the external programs tests and benchmarks compare against, and
//! reading the start-up line of a controller they run as a process of its own.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Finds `name` on `PATH`, or in the sbin directories Debian puts nginx in.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Starts nginx (`bin`) in the foreground with `conf`, written to `dir/nginx.conf`, and
/// prefix `dir`; its stderr is passed through. `conf` should say `daemon off;`.
pub fn spawn_nginx(bin: &Path, dir: &Path, conf: &str) -> std::io::Result<Child> {
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
}

/// The addresses a controller bound, from its start-up log line.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// The public API.
    pub api: SocketAddr,
    /// The admin port.
    pub admin: SocketAddr,
}

/// Reads a controller's JSON log (`--log-format json`) from its `stderr` on a thread of
/// its own, handing every line to `on_line`, and waits at most `within` for the start-up
/// line ("origin-discovery started") to return the addresses it bound (`--listen
/// 127.0.0.1:0` picks free ports). The thread keeps draining the pipe until the process
/// closes it: a full pipe would block the controller's logging.
pub fn wait_started(
    stderr: ChildStderr,
    within: Duration,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> Result<Bound, String> {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            on_line(&line);
            // Nobody listens once the start-up line was found.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + within;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => {
                    format!("the controller did not log its start-up line within {within:?}")
                }
                mpsc::RecvTimeoutError::Disconnected => {
                    "the controller closed its log (exited?) before its start-up line".to_string()
                }
            })?;
        if let Some(bound) = started(&line) {
            return bound;
        }
    }
}

/// The addresses in `line` if it is the start-up line; `None` for any other line.
fn started(line: &str) -> Option<Result<Bound, String>> {
    let v = serde_json::from_str::<serde_json::Value>(line).ok()?;
    let fields = &v["fields"];
    if fields["message"] != "origin-discovery started" {
        return None;
    }
    let addr = |name: &str| {
        fields[name]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the start-up line has no `{name}` address: {line}"))
    };
    Some(addr("api").and_then(|api| {
        Ok(Bound {
            api,
            admin: addr("admin")?,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_line_gives_both_addresses_and_other_lines_none() {
        let line = r#"{"level":"INFO","fields":{"message":"origin-discovery started","api":"127.0.0.1:4000","admin":"[::1]:4001"}}"#;
        let bound = started(line).unwrap().unwrap();
        assert_eq!(bound.api, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(bound.admin, "[::1]:4001".parse().unwrap());
        assert!(started(r#"{"fields":{"message":"watch error"}}"#).is_none());
        assert!(started("not json").is_none());
        let broken = r#"{"fields":{"message":"origin-discovery started","api":"127.0.0.1:4000"}}"#;
        assert!(started(broken).unwrap().unwrap_err().contains("`admin`"));
    }

    /// `sh -c script` with its stderr piped.
    fn child(script: &str) -> (Child, ChildStderr) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh runs");
        let stderr = child.stderr.take().expect("piped");
        (child, stderr)
    }

    #[test]
    fn waits_past_other_lines_and_hands_each_to_the_callback() {
        let (mut c, stderr) = child(
            r#"echo '{"fields":{"message":"watching"}}' >&2
               echo '{"fields":{"message":"origin-discovery started","api":"127.0.0.1:1","admin":"127.0.0.1:2"}}' >&2
               echo after >&2"#,
        );
        let (tx, rx) = mpsc::channel();
        let bound = wait_started(stderr, Duration::from_secs(10), move |l| {
            let _ = tx.send(l.to_string());
        })
        .unwrap();
        assert_eq!((bound.api.port(), bound.admin.port()), (1, 2));
        c.wait().unwrap();
        // Lines after the start-up line are still drained through the callback.
        let seen: Vec<String> = rx.iter().collect();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[2], "after");
    }

    #[test]
    fn a_process_that_exits_first_is_an_error_not_a_wait() {
        let (mut c, stderr) = child("echo 'error: bad flag' >&2; exit 2");
        let started = Instant::now();
        let err = wait_started(stderr, Duration::from_secs(30), |_| {}).unwrap_err();
        assert!(err.contains("before its start-up line"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "it waited out the timeout"
        );
        c.wait().unwrap();
    }
}
