//! Subscriber limits (`--max-subscribers`, `--max-subscribers-per-ip`) for WebSocket, SSE
//! and waiting long-polls, enforced before the upgrade, the SSE response or the wait,
//! released when the guard drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;

use super::error::ApiError;

/// Counts live subscribers in total and per client IP.
#[derive(Debug)]
pub struct Limiter {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted subscriber; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    ip: IpAddr,
    gauge: Gauge,
}

impl Limiter {
    /// A limiter admitting at most `max_total` subscribers and `max_per_ip` per IP.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_ip,
            state: Mutex::default(),
        })
    }

    /// Admits a subscriber from `ip`, or says which limit refuses it. `gauge` tracks the
    /// transport's live subscribers.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, gauge: Gauge) -> Result<Permit, ApiError> {
        let mut s = self.state.lock().expect("limiter lock poisoned");
        if s.total >= self.max_total {
            return Err(ApiError::TooManySubscribers(
                "the server is at --max-subscribers",
            ));
        }
        let n = s.per_ip.entry(ip).or_default();
        if *n >= self.max_per_ip {
            return Err(ApiError::TooManySubscribers(
                "this client IP is at --max-subscribers-per-ip",
            ));
        }
        *n += 1;
        s.total += 1;
        gauge.inc();
        Ok(Permit {
            limiter: self.clone(),
            ip,
            gauge,
        })
    }

    /// Live subscribers.
    pub fn total(&self) -> usize {
        self.state.lock().expect("limiter lock poisoned").total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gauge.dec();
        let mut s = self.limiter.state.lock().expect("limiter lock poisoned");
        s.total -= 1;
        if let Some(n) = s.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_ip_and_frees_on_drop() {
        let l = Limiter::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        let g = Gauge::default();
        let p1 = l.acquire(a, g.clone()).unwrap();
        let _p2 = l.acquire(a, g.clone()).unwrap();
        assert!(l.acquire(a, g.clone()).is_err());
        let _p3 = l.acquire(b, g.clone()).unwrap();
        assert!(l.acquire(b, g.clone()).is_err());
        assert_eq!(g.get(), 3);
        drop(p1);
        assert_eq!(l.total(), 2);
        assert!(l.acquire(a, g.clone()).is_ok());
    }
}
