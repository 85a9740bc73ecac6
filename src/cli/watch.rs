//! `watch NS/SVC`: one line per change of a pool as it arrives over the WebSocket API.
//!
//! Each line carries the revision and the **lag**: how long after the triggering event the
//! change reached this terminal. A delta's `received` is the controller's wall-clock time of
//! the signal that triggered it (watch event or probe result), so lag = local receive time −
//! `received`, removals included. From a server that does not send `received`, the newest
//! `since` among the delta's upserts stands in (an upper bound when an upsert changed another
//! field than the state, and nothing for a delta that only removes). It is `-` for
//! snapshots, `stale` flips and undated deltas, and it is only as exact as the two clocks
//! agree (on the same host: exact; across hosts: NTP skew adds in, and can even make it
//! negative).
//!
//! Heartbeats are not printed (they are not changes) but keep the session alive; when
//! nothing arrives for [`PING_AFTER`] the CLI sends `{"type":"ping"}`, and gives up after
//! [`DEAD_AFTER`] of silence.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as Frame};

use super::http::{api_error, root_cause, Server};
use super::table::{address, or_none, timestamp};
use super::{emit, CliError, Exit, Output, Result, WatchArgs};
use origin_discovery_core::messages::Message;
use origin_discovery_core::model::{Delta, Origin, PoolId};

/// Silence after which the CLI pings the server.
pub const PING_AFTER: Duration = Duration::from_secs(15);
/// Silence after which the connection counts as dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(45);
/// Largest frame accepted (a snapshot of a very large pool).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Runs `watch` until Ctrl-C (exit 0), the pool's removal (exit 3) or a lost connection
/// (exit 1).
pub async fn run(args: &WatchArgs, out: &mut impl Write) -> Result<()> {
    let server = Server::new(&args.client)?;
    let pool = &args.pool;
    let url = server.ws_url(&format!("/v1/pools/{}/{}/watch", pool.namespace, pool.name));
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(MAX_FRAME);
    config.max_frame_size = Some(MAX_FRAME);
    let connect = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), true);
    let (mut ws, _) = tokio::time::timeout(server.timeout(), connect)
        .await
        .map_err(|_| {
            CliError::new(
                Exit::Server,
                format!(
                    "{} did not accept the WebSocket within {:?}",
                    server.base(),
                    server.timeout()
                ),
            )
        })?
        .map_err(|e| handshake_error(e, &server, pool))?;
    let output = args.client.output;
    if output != Output::Json {
        emit(out, &header(output))?;
    }
    let mut view = View::default();
    let mut last_rx = Instant::now();
    let mut pinged = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return Ok(());
            }
            _ = tick.tick() => {
                let silent = last_rx.elapsed();
                if silent >= DEAD_AFTER {
                    return Err(CliError::new(Exit::Server, format!(
                        "no message from {} for {DEAD_AFTER:?}: connection lost", server.base())));
                }
                if silent >= PING_AFTER && !pinged {
                    pinged = true;
                    let ping = Frame::text(r#"{"type":"ping"}"#);
                    ws.send(ping).await.map_err(|e| lost(&server, &e))?;
                }
            }
            frame = ws.next() => {
                let received = Utc::now();
                last_rx = Instant::now();
                pinged = false;
                match frame {
                    None => return Err(CliError::new(Exit::Server, format!(
                        "{} closed the connection", server.base()))),
                    Some(Err(e)) => return Err(lost(&server, &e)),
                    Some(Ok(Frame::Text(text))) => {
                        let message: Message = serde_json::from_str(&text).map_err(|e| {
                            CliError::new(Exit::Server, format!("unexpected message from {}: {e}", server.base()))
                        })?;
                        if let Some(line) = view.line(&message, received, output) {
                            emit(out, &line)?;
                        }
                        if let Message::Removed { pool, .. } = &message {
                            return Err(CliError::new(Exit::NotFound, format!("pool {pool} was removed")));
                        }
                    }
                    Some(Ok(Frame::Close(close))) => {
                        let why = close.map(|c| format!("{} {}", u16::from(c.code), c.reason)).unwrap_or_default();
                        return Err(CliError::new(Exit::Server, format!(
                            "{} closed the session: {why}", server.base())));
                    }
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

fn lost(server: &Server, e: &tungstenite::Error) -> CliError {
    CliError::new(
        Exit::Server,
        format!("connection to {} lost: {}", server.base(), root_cause(e)),
    )
}

fn handshake_error(e: tungstenite::Error, server: &Server, pool: &PoolId) -> CliError {
    match e {
        tungstenite::Error::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            api_error(response.status().as_u16(), body, Some(pool))
        }
        other => CliError::new(
            Exit::Server,
            format!("cannot reach {}: {}", server.base(), root_cause(&other)),
        ),
    }
}

fn header(output: Output) -> String {
    let time = if output == Output::Wide {
        "TIME                       "
    } else {
        "TIME           "
    };
    format!("{time}REVISION   LAG        EVENT\n")
}

/// The pool as this watch has seen it, to describe each change.
#[derive(Debug, Default)]
pub struct View {
    origins: BTreeMap<String, Origin>,
}

impl View {
    /// The line for `message` received at `received`, if it is a change.
    pub fn line(
        &mut self,
        message: &Message,
        received: DateTime<Utc>,
        output: Output,
    ) -> Option<String> {
        let wide = output == Output::Wide;
        let (revision, lag, event) = match message {
            Message::Heartbeat { .. } | Message::Pong { .. } => return None,
            Message::Snapshot(s) => {
                self.origins = s
                    .origins
                    .iter()
                    .map(|o| (o.id.clone(), o.clone()))
                    .collect();
                let ready = s.count(origin_discovery_core::model::OriginState::Ready);
                let mut event = format!(
                    "snapshot: {} origins ({ready} ready, {} draining){}",
                    s.origins.len(),
                    s.origins.len() - ready,
                    if s.stale { ", stale" } else { "" }
                );
                if wide {
                    event.push_str(&format!(" epoch {}", s.epoch));
                    for o in s.origins.iter() {
                        event.push_str(&format!("; {} {}", o.id, details(o)));
                    }
                }
                (s.revision, None, event)
            }
            Message::Delta(d) => {
                let lag = lag(d, received);
                (d.revision, lag, self.apply(d, wide))
            }
            Message::Stale {
                revision, stale, ..
            } => {
                let event = if *stale {
                    "stale: the controller lost the Kubernetes API; the list may be outdated"
                } else {
                    "stale: no longer (the controller reached the Kubernetes API again)"
                };
                (*revision, None, event.to_string())
            }
            Message::Removed { revision, .. } => (*revision, None, "pool removed".to_string()),
        };
        if output == Output::Json {
            let line = json!({
                "received": timestamp(received),
                "revision": revision,
                "lag_ms": lag.map(|l| l.num_milliseconds()),
                "message": message,
            });
            return Some(line.to_string() + "\n");
        }
        let time = if wide {
            timestamp(received)
        } else {
            received.format("%H:%M:%S%.3f").to_string()
        };
        let lag = lag.map_or_else(|| "-".to_string(), format_lag);
        Some(format!("{time:<12}   {revision:<8}   {lag:<7}   {event}\n"))
    }

    fn apply(&mut self, delta: &Delta, wide: bool) -> String {
        let mut parts = Vec::new();
        for o in &delta.upsert {
            let part = match self.origins.get(&o.id) {
                None => format!("+{} {}", o.id, o.state.as_str()),
                Some(prev) if prev.state != o.state => {
                    format!("{} {}→{}", o.id, prev.state.as_str(), o.state.as_str())
                }
                Some(_) => format!("~{}", o.id),
            };
            parts.push(if wide {
                format!("{part} ({})", details(o))
            } else {
                part
            });
            self.origins.insert(o.id.clone(), o.clone());
        }
        for id in &delta.remove {
            self.origins.remove(id);
            parts.push(format!("-{id}"));
        }
        if parts.is_empty() {
            "no change".to_string()
        } else {
            parts.join("; ")
        }
    }
}

fn details(o: &Origin) -> String {
    format!(
        "zone {}, node {}, {}, since {}",
        or_none(o.zone.as_deref()),
        or_none(o.node.as_deref()),
        address(o),
        timestamp(o.since)
    )
}

/// Receive time minus the delta's `received`, else minus the newest `since` among its
/// upserts (see the module docs).
pub fn lag(delta: &Delta, received: DateTime<Utc>) -> Option<chrono::Duration> {
    delta
        .received
        .or_else(|| delta.upsert.iter().map(|o| o.since).max())
        .map(|t| received - t)
}

/// `850ms`, `1.25s`, `2m5s`; negative (clock skew) with a minus sign.
pub fn format_lag(lag: chrono::Duration) -> String {
    let ms = lag.num_milliseconds();
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        format!("{sign}{ms}ms")
    } else if ms < 60_000 {
        format!("{sign}{:.2}s", ms as f64 / 1000.0)
    } else {
        format!("{sign}{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use origin_discovery_core::fixtures::origin_in;
    use origin_discovery_core::model::{OriginState, Snapshot};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn origin(id: &str, state: OriginState, since: &str) -> Origin {
        Origin {
            since: at(since),
            ..origin_in(id, None, state)
        }
    }

    #[test]
    fn lines_describe_each_change_with_its_revision_and_lag() {
        let mut view = View::default();
        let pool = PoolId::new("demo", "origin");
        let snapshot = Message::Snapshot(Snapshot {
            pool: pool.clone(),
            epoch: "e".into(),
            revision: 7,
            stale: false,
            origins: vec![
                origin("a", OriginState::Ready, "2026-11-22T12:00:00Z"),
                origin("b", OriginState::Ready, "2026-11-22T12:00:00Z"),
            ]
            .into(),
        });
        let t = at("2026-11-22T12:00:10.000Z");
        let line = view.line(&snapshot, t, Output::Table).unwrap();
        assert_eq!(
            line,
            "12:00:10.000   7          -         snapshot: 2 origins (2 ready, 0 draining)\n"
        );
        let delta = Message::Delta(Delta {
            pool,
            epoch: "e".into(),
            revision: 8,
            upsert: vec![
                origin("a", OriginState::Draining, "2026-11-22T12:00:09.988Z"),
                origin("c", OriginState::Ready, "2026-11-22T12:00:09.500Z"),
            ],
            remove: vec!["b".into()],
            received: None,
        });
        let line = view.line(&delta, t, Output::Table).unwrap();
        assert_eq!(
            line,
            "12:00:10.000   8          12ms      a ready→draining; +c ready; -b\n"
        );
        let json: serde_json::Value =
            serde_json::from_str(&view.line(&delta, t, Output::Json).unwrap()).unwrap();
        assert_eq!(json["lag_ms"], 12);
        assert_eq!(json["revision"], 8);
        assert_eq!(json["message"]["type"], "delta");
        assert!(view
            .line(&Message::Heartbeat { revision: 8 }, t, Output::Table)
            .is_none());
        // A removal dated by the server's `received`: its lag too.
        let removal = Message::Delta(Delta {
            pool: PoolId::new("demo", "origin"),
            epoch: "e".into(),
            revision: 9,
            upsert: vec![],
            remove: vec!["a".into()],
            received: Some(at("2026-11-22T12:00:09.960Z")),
        });
        let line = view.line(&removal, t, Output::Table).unwrap();
        assert_eq!(line, "12:00:10.000   9          40ms      -a\n");
    }

    #[test]
    fn lags_format_compactly_and_show_skew() {
        let ms = chrono::Duration::milliseconds;
        assert_eq!(format_lag(ms(850)), "850ms");
        assert_eq!(format_lag(ms(1250)), "1.25s");
        assert_eq!(format_lag(ms(125_000)), "2m5s");
        assert_eq!(format_lag(ms(-3)), "-3ms");
    }
}
