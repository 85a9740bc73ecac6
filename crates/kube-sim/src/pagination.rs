//! `limit`/`continue` pagination with consistent pages.
//!
//! The first page of a limited list snapshots the filtered result (a vector of `Arc`s,
//! cheap to keep); later pages are served from that snapshot, so every page is consistent
//! with the first page's `resourceVersion`, as with the real apiserver. Only the most
//! recent [`KEPT_SNAPSHOTS`] lists are kept; a continue token whose snapshot was evicted
//! gets 410 Expired, as an apiserver answers a token older than its compaction window.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::status::ApiError;

/// Number of in-progress paginated lists kept.
pub const KEPT_SNAPSHOTS: usize = 32;

/// Snapshots of paginated lists.
#[derive(Default)]
pub struct Paginator {
    /// Newest last; bounded by [`KEPT_SNAPSHOTS`].
    snapshots: Mutex<VecDeque<Snapshot>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// `(id, resourceVersion, items)` of one paginated list.
type Snapshot = (u64, u64, Arc<Vec<Arc<Value>>>);

/// One page of a list.
pub struct Page {
    /// Items on this page.
    pub items: Vec<Arc<Value>>,
    /// `resourceVersion` the whole list is consistent with.
    pub resource_version: u64,
    /// Token for the next page, if any.
    pub continue_token: Option<String>,
    /// Items after this page, if any.
    pub remaining: Option<usize>,
}

impl Paginator {
    /// Serves the first page of `items` (consistent with `rv`), or everything when
    /// `limit` is `None` or covers the whole list.
    pub fn first(&self, items: Vec<Arc<Value>>, rv: u64, limit: Option<usize>) -> Page {
        match limit {
            Some(limit) if limit > 0 && limit < items.len() => {
                let items = Arc::new(items);
                let id = self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                {
                    let mut snaps = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
                    snaps.push_back((id, rv, items.clone()));
                    while snaps.len() > KEPT_SNAPSHOTS {
                        snaps.pop_front();
                    }
                }
                page(id, rv, &items, 0, limit)
            }
            _ => Page {
                items,
                resource_version: rv,
                continue_token: None,
                remaining: None,
            },
        }
    }

    /// Serves the page a continue token points at.
    pub fn next(&self, token: &str, limit: Option<usize>) -> Result<Page, ApiError> {
        let bad = || {
            ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        };
        let decoded = decode_hex(token).ok_or_else(bad)?;
        let v: Value = serde_json::from_slice(&decoded).map_err(|_| bad())?;
        let (Some(id), Some(start)) = (v["id"].as_u64(), v["start"].as_u64()) else {
            return Err(bad());
        };
        let found = {
            let snaps = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
            snaps
                .iter()
                .find(|(i, _, _)| *i == id)
                .map(|(_, rv, items)| (*rv, items.clone()))
        };
        let Some((rv, items)) = found else {
            return Err(ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
            ));
        };
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        Ok(page(id, rv, &items, start as usize, limit))
    }
}

fn page(id: u64, rv: u64, items: &[Arc<Value>], start: usize, limit: usize) -> Page {
    let start = start.min(items.len());
    let end = start.saturating_add(limit).min(items.len());
    let more = end < items.len();
    Page {
        items: items[start..end].to_vec(),
        resource_version: rv,
        continue_token: more.then(|| {
            encode_hex(
                json!({"v": "meta.k8s.io/v1", "rv": rv, "id": id, "start": end})
                    .to_string()
                    .as_bytes(),
            )
        }),
        remaining: more.then(|| items.len() - end),
    }
}

fn encode_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
