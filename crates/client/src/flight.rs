//! A shared fetch's result, handed to every miss that joined it.
//!
//! Not a `tokio::sync::watch` channel: watch spreads its waiters over eight lists picked at
//! random, so misses woken by one fetch resume in a random order. Here they resume in the
//! order they joined, and a simulation on one thread replays identically.

use std::{
    pin::pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
};

use tokio::sync::Notify;

use crate::{Error, Token};

/// The result of one shared fetch, once it lands.
#[derive(Default)]
pub(crate) struct Flight {
    result: Mutex<Option<Result<Token, Error>>>,
    landed: Notify,
    /// Misses that joined and still wait.
    waiting: AtomicUsize,
}

impl Flight {
    /// Hands `result` to every miss waiting now or joining later; a flight lands once (a
    /// second result is ignored).
    pub(crate) fn land(&self, result: Result<Token, Error>) {
        self.result
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(result);
        self.landed.notify_waiters();
    }

    /// Misses waiting for the result.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Joins the flight: counted as waiting from now until the returned passenger is
    /// dropped or has its result.
    pub(crate) fn join(self: &Arc<Self>) -> Passenger {
        self.waiting.fetch_add(1, Ordering::AcqRel);
        Passenger(Arc::clone(self))
    }

    fn landed_result(&self) -> Option<Result<Token, Error>> {
        self.result
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A miss waiting for a [`Flight`].
pub(crate) struct Passenger(Arc<Flight>);

impl Passenger {
    /// The flight's result, once it lands.
    pub(crate) async fn result(self) -> Result<Token, Error> {
        let flight = &self.0;
        loop {
            let mut notified = pin!(flight.landed.notified());
            // Registered before looking, so a landing in between is not missed.
            notified.as_mut().enable();
            if let Some(result) = flight.landed_result() {
                return result;
            }
            notified.await;
        }
    }
}

impl Drop for Passenger {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}
