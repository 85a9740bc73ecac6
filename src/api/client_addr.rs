//! The client's address behind trusted proxies (`--trusted-proxies`,
//! `--forwarded-header`; docs/DESIGN.md, "Behind proxies, connection limits").
//!
//! Only when the socket peer is a trusted proxy is its forwarding header believed, and only
//! the one it is configured to set: `X-Forwarded-For` or `Forwarded` (RFC 7239, its `for=`
//! parameters). The other header is ignored: proxies pass on what they do not set
//! themselves (nginx passes a client's `Forwarded` through while it appends to
//! `X-Forwarded-For`), so a client could otherwise name any address it likes.
//! Walking the hops from the right (nearest) end, every trusted proxy is skipped and the
//! first untrusted address is the client — a client cannot pick its own address by sending
//! a forged header, since its proxy appends the real one. A hop that hides its address
//! (`unknown`, an obfuscated `_name`, garbage) stops the walk at the proxy that reported
//! it. When every hop is trusted, the leftmost one is the client.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::connect_info::ConnectInfo;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use super::ApiState;
use crate::config::{Cidr, ForwardedHeader};

/// The client address of a request, as the subscriber limits and the logs use it.
/// Extracting it never fails: without connection info (a router driven without a server)
/// it is the unspecified address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl std::fmt::Display for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromRequestParts<ApiState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(addr)| addr.ip());
        let config = &state.config;
        Ok(Self(client_ip(
            peer,
            &parts.headers,
            &config.trusted_proxies,
            config.forwarded_header,
        )))
    }
}

/// Most forwarding hops looked at, from the nearest: far more than any real proxy chain.
const MAX_HOPS: usize = 32;

/// The client address for a request from socket peer `peer` (see the module docs).
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[Cidr],
    header: ForwardedHeader,
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = forwarded_hops(headers, header);
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(*ip) {
                    return *ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// The hops a request passed according to `header`, oldest (leftmost) first; `None` for
/// one that did not say its address.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    // Read lossily: a proxy appends the real hop to a line that may carry a client's
    // non-UTF-8 bytes, and that hop must still be found.
    let name = match header {
        ForwardedHeader::Forwarded => "forwarded",
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
    };
    let mut hops = Vec::new();
    for line in headers.get_all(name) {
        let line = String::from_utf8_lossy(line.as_bytes());
        match header {
            ForwardedHeader::Forwarded => {
                hops.extend(split_outside_quotes(&line, ',').map(forwarded_for))
            }
            ForwardedHeader::XForwardedFor => {
                hops.extend(line.split(',').map(|hop| parse_node(hop.trim())))
            }
        }
    }
    hops
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.1;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    split_outside_quotes(element, ';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        parse_node(value)
    })
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Splits on `sep` where it is not inside a quoted string.
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    /// The client behind proxies that set `X-Forwarded-For`.
    fn xff(peer: &str, h: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
        client_ip(ip(peer), h, trusted, ForwardedHeader::XForwardedFor)
    }

    /// The client behind proxies that set `Forwarded`.
    fn fwd(peer: &str, h: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
        client_ip(ip(peer), h, trusted, ForwardedHeader::Forwarded)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(xff("9.9.9.9", &h, &[]), ip("9.9.9.9"));
        assert_eq!(fwd("9.9.9.9", &h, &[]), ip("9.9.9.9"));
        let trusted = cidrs(&["10.0.0.0/8"]);
        assert_eq!(xff("9.9.9.9", &h, &trusted), ip("9.9.9.9"));
        assert_eq!(fwd("9.9.9.9", &h, &trusted), ip("9.9.9.9"));
    }

    #[test]
    fn the_rightmost_untrusted_x_forwarded_for_hop_is_the_client() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // A forged entry on the left is not believed: the proxy appended the real peer.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.1.2.3")]);
        assert_eq!(xff("10.0.0.1", &h, &trusted), ip("203.0.113.9"));
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(xff("10.0.0.1", &h, &trusted), ip("203.0.113.9"));
        // No header: the proxy itself.
        assert_eq!(xff("10.0.0.1", &HeaderMap::new(), &trusted), ip("10.0.0.1"));
        // All trusted: the leftmost.
        let h = headers(&[("x-forwarded-for", "10.9.9.9, 10.1.1.1")]);
        assert_eq!(xff("10.0.0.1", &h, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn an_undisclosed_hop_stops_at_the_proxy_that_reported_it() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "1.1.1.1, garbage, 10.1.1.1")]);
        assert_eq!(xff("10.0.0.1", &h, &trusted), ip("10.1.1.1"));
        let h = headers(&[("forwarded", "for=1.1.1.1, for=unknown")]);
        assert_eq!(fwd("10.0.0.1", &h, &trusted), ip("10.0.0.1"));
        let h = headers(&[("forwarded", "for=_hidden;proto=https")]);
        assert_eq!(fwd("10.0.0.1", &h, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn only_the_configured_header_is_believed() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        // nginx appends to X-Forwarded-For and passes the client's own Forwarded through:
        // behind it, a forged Forwarded changes nothing, and the other way round.
        let h = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(xff("10.0.0.1", &h, &trusted), ip("203.0.113.9"));
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        assert_eq!(fwd("10.0.0.1", &h, &trusted), ip("203.0.113.9"));
        // Only the other header present: the proxy itself is the client.
        let h = headers(&[("forwarded", "for=6.6.6.6")]);
        assert_eq!(xff("10.0.0.1", &h, &trusted), ip("10.0.0.1"));
        let h = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(fwd("10.0.0.1", &h, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn a_non_utf8_hop_does_not_hide_the_one_the_proxy_appended() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.9").unwrap(),
        );
        assert_eq!(xff("10.0.0.1", &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_parses_rfc_7239_nodes() {
        let trusted = cidrs(&["10.0.0.0/8", "fd00::/8"]);
        let h = headers(&[(
            "forwarded",
            r#"for="[2001:db8:cafe::17]:4711";proto=https, For="10.2.2.2:80";by=10.0.0.1"#,
        )]);
        assert_eq!(fwd("fd00::1", &h, &trusted), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "proto=http;for=192.0.2.60;by=203.0.113.43")]);
        assert_eq!(fwd("10.0.0.1", &h, &trusted), ip("192.0.2.60"));
        // A quoted comma does not split elements.
        let h = headers(&[("forwarded", r#"for=192.0.2.7;host="a,b", for=10.0.0.2"#)]);
        assert_eq!(fwd("10.0.0.1", &h, &trusted), ip("192.0.2.7"));
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_count_as_ipv4() {
        let trusted = cidrs(&["127.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.4")]);
        assert_eq!(xff("::ffff:127.0.0.1", &h, &trusted), ip("198.51.100.4"));
    }

    #[test]
    fn only_the_nearest_hops_are_walked() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let many = vec!["10.0.0.9"; 100].join(",");
        let h = headers(&[("x-forwarded-for", &format!("1.2.3.4,{many}"))]);
        assert_eq!(xff("10.0.0.1", &h, &trusted), ip("10.0.0.9"));
    }
}
