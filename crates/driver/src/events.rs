//! The scenario's timed events, applied to the embedded identity provider and backend.

use tokio::{sync::Mutex as AsyncMutex, time::Instant};

use metrics::Metrics;
use scenario::EventKind;

/// The token-endpoint faults the events change, over the scenario's own: the outage end and
/// the throttle in force. Every change recomputes the whole document, so an outage is never
/// restarted by a throttle and a throttle's end does not undo an outage.
pub(crate) struct EventFaults {
    base: mock::TokenFaults,
    state: AsyncMutex<(Option<Instant>, Option<f64>)>,
}

impl EventFaults {
    pub(crate) fn new(mock: &mock::Mock) -> Self {
        EventFaults {
            base: mock.faults().token,
            state: AsyncMutex::new((None, None)),
        }
    }

    async fn update(
        &self,
        mock: &mock::Mock,
        change: impl FnOnce(&mut (Option<Instant>, Option<f64>)),
    ) {
        let mut state = self.state.lock().await;
        change(&mut state);
        let (outage_until, throttle) = *state;
        let mut document = mock.faults();
        document.token = mock::TokenFaults {
            outage_ms: outage_until
                .map(|until| until.saturating_duration_since(Instant::now()))
                .filter(|left| !left.is_zero())
                .map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
            throttle_rps: throttle.or(self.base.throttle_rps),
            ..self.base.clone()
        };
        // Validated when the scenario was loaded; the mock checks again and keeps the old
        // faults on error.
        let _ = mock.set_faults(document);
    }
}

pub(crate) async fn apply_event(
    mock: &mock::Mock,
    kind: &EventKind,
    metrics: &Metrics,
    faults: &EventFaults,
) {
    match kind {
        EventKind::RevokeTokens => {
            mock.backend.revoke_all();
            // From now on tokens are rejected: the recovery clock starts here.
            metrics.revocation_event(metrics.elapsed());
        }
        EventKind::RotateIdpKeys => {
            // Reading the embedded provider's keys cannot fail.
            if mock.idp.rotate_keys().await.is_ok() && mock.backend.reload_keys().await.is_ok() {
                metrics.revocation_event(metrics.elapsed());
            }
        }
        EventKind::IdpOutage { duration } => {
            let until = Instant::now() + *duration;
            faults.update(mock, |state| state.0 = Some(until)).await;
            tokio::time::sleep_until(until).await;
            faults.update(mock, |state| state.0 = None).await;
        }
        EventKind::IdpThrottle { rate, duration } => {
            faults.update(mock, |state| state.1 = Some(*rate)).await;
            tokio::time::sleep(*duration).await;
            faults.update(mock, |state| state.1 = None).await;
        }
    }
}
