//! The push messages of the WebSocket and SSE API (DESIGN.md, "WebSocket messages").
//!
//! [`Message`] borrows and is what the server encodes (once per revision, shared by every
//! subscriber); [`ServerMessage`] owns and is what clients (the Rust client, tests) decode.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{Origin, PoolId};

/// A server → client message, borrowed for encoding.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message<'a> {
    /// The full list; first message of a fresh subscription, or a reset after a gap.
    Snapshot {
        /// Pool id.
        pool: &'a PoolId,
        /// Process epoch.
        epoch: &'a str,
        /// Revision of this list.
        revision: u64,
        /// Whether the list is stale (apiserver unreachable).
        stale: bool,
        /// Origins sorted by id.
        origins: &'a [Origin],
    },
    /// One revision's change.
    Delta {
        /// Pool id.
        pool: &'a PoolId,
        /// Process epoch.
        epoch: &'a str,
        /// The revision this delta produces (previous + 1).
        revision: u64,
        /// Added or changed origins.
        upsert: &'a [Origin],
        /// Ids of removed origins.
        remove: &'a [String],
    },
    /// Liveness for clients that cannot see ping frames (browsers).
    Heartbeat {
        /// Latest revision sent on this subscription.
        revision: u64,
    },
    /// The stale flag changed; the list did not (no new revision).
    Stale {
        /// Pool id.
        pool: &'a PoolId,
        /// Process epoch.
        epoch: &'a str,
        /// Current revision.
        revision: u64,
        /// New value.
        stale: bool,
    },
    /// The pool disappeared (Service deleted or opted out); the server then closes.
    Removed {
        /// Pool id.
        pool: &'a PoolId,
        /// Process epoch.
        epoch: &'a str,
        /// Last revision.
        revision: u64,
    },
    /// Answer to a client `{"type":"ping"}`.
    Pong {
        /// Latest revision sent on this subscription.
        revision: u64,
    },
}

impl Message<'_> {
    /// Serializes to a JSON text frame payload.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("messages always serialize"))
    }
}

/// A server → client message, owned, for decoding.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// See [`Message::Snapshot`].
    Snapshot {
        /// Pool id.
        pool: PoolId,
        /// Process epoch.
        epoch: String,
        /// Revision.
        revision: u64,
        /// Stale flag.
        stale: bool,
        /// Origins.
        origins: Vec<Origin>,
    },
    /// See [`Message::Delta`].
    Delta {
        /// Pool id.
        pool: PoolId,
        /// Process epoch.
        epoch: String,
        /// Revision.
        revision: u64,
        /// Upserts.
        upsert: Vec<Origin>,
        /// Removals.
        remove: Vec<String>,
    },
    /// See [`Message::Heartbeat`].
    Heartbeat {
        /// Revision.
        revision: u64,
    },
    /// See [`Message::Stale`].
    Stale {
        /// Pool id.
        pool: PoolId,
        /// Process epoch.
        epoch: String,
        /// Revision.
        revision: u64,
        /// Stale flag.
        stale: bool,
    },
    /// See [`Message::Removed`].
    Removed {
        /// Pool id.
        pool: PoolId,
        /// Process epoch.
        epoch: String,
        /// Revision.
        revision: u64,
    },
    /// See [`Message::Pong`].
    Pong {
        /// Revision.
        revision: u64,
    },
}

/// A client → server control message. Anything else closes the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// `{"type":"ping"}`: asks for a [`Message::Pong`].
    Ping,
}

impl ClientMessage {
    /// Parses a control message strictly: a JSON object with exactly the key `type`.
    pub fn parse(text: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let obj = value.as_object()?;
        match (obj.len(), obj.get("type").and_then(|t| t.as_str())) {
            (1, Some("ping")) => Some(Self::Ping),
            _ => None,
        }
    }
}
