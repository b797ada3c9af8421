//! One tokio runtime for the targets whose entry points are async.

use std::{future::Future, sync::OnceLock};

use tokio::runtime::{Builder, Runtime};

/// Runs `future` to completion on the targets' current-thread runtime.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("the fuzz harness needs a tokio runtime")
        })
        .block_on(future)
}
