//! Panics caught where they are raised: [`Contained`] runs a future and turns a panic inside it into
//! a value, so one object's pass (or a background read) never unwinds into the task that drives every
//! other. [`install_hook`] keeps such panics out of the default panic output: whoever contained one
//! reports it, once, with what it was working on.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context as TaskContext, Poll};

thread_local! {
    /// Set while a contained future is polled on this thread: its panics are reported by the pass,
    /// not printed by the default hook.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
    /// Where the last contained panic on this thread was raised, and its message.
    static LAST: RefCell<Option<Panicked>> = const { RefCell::new(None) };
}

/// A panic caught in a contained future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    /// `file:line` of the panic.
    pub location: String,
    /// The panic's message (for the log only: it may quote any value).
    pub message: String,
}

/// Installs the panic hook once per process: a panic inside a contained future is recorded for the
/// pass to report; any other goes to the hook that was installed before.
pub fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINED.with(Cell::get) {
                let location = info
                    .location()
                    .map_or_else(|| "unknown".to_string(), |l| format!("{}:{}", l.file(), l.line()));
                let payload = info.payload();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                LAST.with(|l| *l.borrow_mut() = Some(Panicked { location, message }));
            } else {
                previous(info);
            }
        }));
    });
}

/// A future whose panics are caught: it resolves to `Err(Panicked)` instead of unwinding into the
/// task that polls it.
pub struct Contained<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Contained<F> {
    pub fn new(inner: F) -> Self {
        Contained {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for Contained<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let outer = CONTAINED.with(|c| c.replace(true));
        let inner = &mut self.inner;
        let polled = catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx)));
        CONTAINED.with(|c| c.set(outer));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => {
                let caught = LAST.with(|l| l.borrow_mut().take()).unwrap_or_else(|| Panicked {
                    location: "unknown".into(),
                    message: payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".into()),
                });
                Poll::Ready(Err(caught))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_and_the_task_goes_on() {
        install_hook();
        let caught = Contained::new(async {
            tokio::task::yield_now().await;
            let v: Vec<u8> = Vec::new();
            #[allow(clippy::indexing_slicing)]
            v[3]
        })
        .await;
        let p = caught.unwrap_err();
        assert!(p.location.contains("panics.rs"), "{p:?}");
        assert!(p.message.contains("index out of bounds"), "{p:?}");
        // A future that does not panic passes its value through.
        assert_eq!(Contained::new(async { 7 }).await, Ok(7));
    }
}
