//! New connections the gateways open to the identity provider and to the backend: how many,
//! how many failed, how many began with a TLS handshake, and how long opening one took.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::{
    histogram::{merge, new_histogram, MAX_LATENCY_US},
    recorder::{lock, micros},
    snapshot::Percentiles,
    tally::encoded,
    MetricsError,
};

/// The server a connection goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// The identity provider's token endpoint.
    Idp,
    /// The protected backend.
    Backend,
}

/// New connections to one server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStats {
    /// Connections opened (connected and, over TLS, handshaken).
    pub opened: u64,
    /// Attempts that failed (refused, unreachable, a TLS handshake refused) or were given
    /// up (a timeout).
    pub failed: u64,
    /// Of `opened`, those that began with a TLS handshake.
    pub tls_handshakes: u64,
    /// Time to open one, from the connect call to a usable connection (TCP connect plus
    /// the TLS handshake), µs.
    pub open_us: Percentiles,
}

/// New connections to the identity provider and to the backend (reports written before
/// they were counted read as zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionsStats {
    /// To the identity provider's token endpoint.
    pub idp: ConnectionStats,
    /// To the backend.
    pub backend: ConnectionStats,
}

/// The recorder's counters for one server.
pub(crate) struct ConnectionCounters {
    opened: AtomicU64,
    failed: AtomicU64,
    tls_handshakes: AtomicU64,
    open_us: Mutex<Histogram<u64>>,
}

impl ConnectionCounters {
    pub(crate) fn new() -> Result<Self, MetricsError> {
        Ok(ConnectionCounters {
            opened: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            tls_handshakes: AtomicU64::new(0),
            open_us: Mutex::new(new_histogram(MAX_LATENCY_US, "connection open time")?),
        })
    }

    pub(crate) fn opened(&self, took: Duration, tls: bool) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        if tls {
            self.tls_handshakes.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.open_us).saturating_record(micros(took).max(1));
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tally(&self) -> ConnectionTally {
        ConnectionTally {
            opened: self.opened.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            tls_handshakes: self.tls_handshakes.load(Ordering::Relaxed),
            open_us: lock(&self.open_us).clone(),
        }
    }
}

/// [`ConnectionStats`] in mergeable form.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ConnectionTally {
    opened: u64,
    failed: u64,
    tls_handshakes: u64,
    #[serde(with = "encoded")]
    open_us: Histogram<u64>,
}

impl ConnectionTally {
    pub(crate) fn add(&mut self, other: &ConnectionTally) {
        self.opened += other.opened;
        self.failed += other.failed;
        self.tls_handshakes += other.tls_handshakes;
        merge(&mut self.open_us, &other.open_us);
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            opened: self.opened,
            failed: self.failed,
            tls_handshakes: self.tls_handshakes,
            open_us: Percentiles::of(&self.open_us),
        }
    }
}
