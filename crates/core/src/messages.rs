//! The push messages of the WebSocket and SSE API (docs/DESIGN.md, "WebSocket messages").
//!
//! One type for both directions of the wire: the server encodes each message once per
//! revision and shares the bytes with every subscriber; clients (the Rust client, tests)
//! decode the same type.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{Delta, PoolId, Snapshot};

/// A server → client message; its serde form is the wire form (`"type"` tags the kind).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message {
    /// The full list; first message of a fresh subscription, or a reset after a gap.
    Snapshot(Snapshot),
    /// One revision's change (`revision` = previous + 1).
    Delta(Delta),
    /// Liveness for clients that cannot see ping frames (browsers).
    Heartbeat {
        /// Latest revision sent on this subscription.
        revision: u64,
    },
    /// The stale flag changed; the list did not (no new revision).
    Stale {
        /// Pool id.
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = "demo/origin"))]
        pool: PoolId,
        /// Process epoch.
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = "6f1c2a9e"))]
        epoch: Arc<str>,
        /// Current revision.
        revision: u64,
        /// New value.
        stale: bool,
    },
    /// The pool disappeared (Service deleted or opted out); the server then closes.
    Removed {
        /// Pool id.
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = "demo/origin"))]
        pool: PoolId,
        /// Process epoch.
        #[cfg_attr(feature = "openapi", schema(value_type = String, example = "6f1c2a9e"))]
        epoch: Arc<str>,
        /// Last revision.
        revision: u64,
    },
    /// Answer to a client `{"type":"ping"}`.
    Pong {
        /// Latest revision sent on this subscription.
        revision: u64,
    },
}

impl Message {
    /// Serializes to a JSON text frame payload.
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("messages always serialize"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::origin;

    #[test]
    fn snapshot_message_is_the_snapshot_body_with_a_type_tag() {
        let snapshot = Snapshot {
            pool: PoolId::new("demo", "origin"),
            epoch: "e1".into(),
            revision: 7,
            stale: false,
            origins: vec![origin("a")].into(),
        };
        let mut body = serde_json::to_value(&snapshot).unwrap();
        let message = serde_json::to_value(Message::Snapshot(snapshot.clone())).unwrap();
        body.as_object_mut()
            .unwrap()
            .insert("type".into(), "snapshot".into());
        assert_eq!(message, body);
        let decoded: Message = serde_json::from_value(message).unwrap();
        assert_eq!(decoded, Message::Snapshot(snapshot));
    }

    #[test]
    fn client_messages_parse_strictly() {
        assert_eq!(
            ClientMessage::parse(r#"{"type":"ping"}"#),
            Some(ClientMessage::Ping)
        );
        for bad in [
            r#"{"type":"ping","x":1}"#,
            r#"{"type":"pong"}"#,
            "ping",
            "[]",
        ] {
            assert_eq!(ClientMessage::parse(bad), None, "{bad}");
        }
    }
}
