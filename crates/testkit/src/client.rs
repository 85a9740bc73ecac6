//! A Rust client of the push API: subscribes to a pool's WebSocket, applies snapshots and
//! deltas, and detects gaps. Used by the project's own end-to-end tests and benchmarks;
//! ranking is `origin_discovery_core::pick::rank`, the same code the server's `/pick` uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use origin_discovery_core::messages::Message;
use origin_discovery_core::model::{Delta, Origin, PoolId, Snapshot};

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connecting or reading the WebSocket failed.
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server sent something that is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A delta did not follow the current revision: re-subscribe with resume parameters.
    #[error("revision gap: at {have}, got delta {got}")]
    Gap {
        /// Revision held.
        have: u64,
        /// Revision received.
        got: u64,
    },
    /// The server closed the session.
    #[error("closed by the server: {0:?}")]
    Closed(Closed),
    /// No message arrived in time.
    #[error("timed out waiting for a message")]
    Timeout,
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A pool's origin list as a subscriber holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolState {
    /// Server epoch.
    pub epoch: Arc<str>,
    /// Current revision.
    pub revision: u64,
    /// Stale flag.
    pub stale: bool,
    /// Origins by id.
    pub origins: BTreeMap<String, Origin>,
    /// The pool was removed.
    pub removed: bool,
}

impl PoolState {
    /// Applies one message; a delta that does not follow the current revision is a gap.
    pub fn apply(&mut self, msg: &Message) -> Result<()> {
        match msg {
            Message::Snapshot(Snapshot {
                epoch,
                revision,
                stale,
                origins,
                ..
            }) => {
                self.epoch = epoch.clone();
                self.revision = *revision;
                self.stale = *stale;
                self.origins = origins.iter().map(|o| (o.id.clone(), o.clone())).collect();
            }
            Message::Delta(Delta {
                epoch,
                revision,
                upsert,
                remove,
                ..
            }) => {
                if *epoch != self.epoch || *revision != self.revision + 1 {
                    return Err(Error::Gap {
                        have: self.revision,
                        got: *revision,
                    });
                }
                for id in remove {
                    self.origins.remove(id);
                }
                for o in upsert {
                    self.origins.insert(o.id.clone(), o.clone());
                }
                self.revision = *revision;
            }
            Message::Stale { stale, .. } => self.stale = *stale,
            Message::Removed { .. } => self.removed = true,
            Message::Heartbeat { .. } | Message::Pong { .. } => {}
        }
        Ok(())
    }

    /// Origins sorted by id.
    pub fn list(&self) -> Vec<Origin> {
        self.origins.values().cloned().collect()
    }
}

/// The watch URL of a pool, with optional resume parameters.
pub fn watch_url(base: &str, pool: &PoolId, resume: Option<(&str, u64)>) -> String {
    let base = base
        .trim_end_matches('/')
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let mut url = format!("{base}/v1/pools/{}/{}/watch", pool.namespace, pool.name);
    if let Some((epoch, revision)) = resume {
        url.push_str(&format!("?epoch={epoch}&revision={revision}"));
    }
    url
}

/// One WebSocket subscription.
pub struct Watch {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// What the subscription has applied so far.
    pub state: PoolState,
}

/// How a subscription ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed {
    /// Close code, if the server sent one.
    pub code: Option<u16>,
    /// Close reason.
    pub reason: String,
}

impl Watch {
    /// Connects to `url` (see [`watch_url`]).
    pub async fn connect(url: &str) -> Result<Self> {
        // A listener reads small frames: the default 128 KiB read buffer would be zero-filled
        // on every read attempt.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(8 * 1024);
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(config), false).await?;
        Ok(Self::from_stream(ws))
    }

    /// Wraps an already upgraded WebSocket.
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            state: PoolState::default(),
        }
    }

    /// The next message, applied to [`Watch::state`]; `Ok(Err(closed))` once the server
    /// closed the session.
    pub async fn next(&mut self) -> Result<std::result::Result<Message, Closed>> {
        loop {
            let Some(msg) = self.ws.next().await else {
                return Ok(Err(Closed {
                    code: None,
                    reason: String::new(),
                }));
            };
            match msg? {
                WsMessage::Text(t) => {
                    let m: Message = serde_json::from_str(&t)?;
                    self.state.apply(&m)?;
                    return Ok(Ok(m));
                }
                WsMessage::Close(frame) => {
                    return Ok(Err(Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    }));
                }
                _ => continue,
            }
        }
    }

    /// [`Watch::next`] with a deadline.
    pub async fn next_within(
        &mut self,
        d: Duration,
    ) -> Result<std::result::Result<Message, Closed>> {
        tokio::time::timeout(d, self.next())
            .await
            .map_err(|_| Error::Timeout)?
    }

    /// Waits until `pred` holds for the state (applying messages), or the deadline passes.
    pub async fn wait_for(
        &mut self,
        d: Duration,
        mut pred: impl FnMut(&PoolState) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + d;
        while !pred(&self.state) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Err(closed) = self.next_within(left).await? {
                return Err(Error::Closed(closed));
            }
        }
        Ok(())
    }

    /// Sends a raw text message (for tests of the control-message rules).
    pub async fn send_text(&mut self, text: String) -> Result<()> {
        self.ws.send(WsMessage::Text(text.into())).await?;
        Ok(())
    }

    /// Closes the subscription politely.
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
    }
}
