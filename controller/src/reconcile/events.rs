//! Kubernetes Events: sent in the background, in order per object, with notes bounded to what the API
//! server accepts.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType, Recorder};

use super::reasons::Reason;

/// The longest Event note `events.k8s.io/v1` accepts (1 KiB); longer notes are cut, never refused.
pub const MAX_NOTE: usize = 1024;

/// `note` cut to [`MAX_NOTE`] bytes at a character boundary, with an ellipsis when cut.
pub fn bounded_note(note: String) -> String {
    bounded(note, MAX_NOTE)
}

/// `text` cut to at most `max` bytes at a character boundary, with an ellipsis when cut.
pub fn bounded(note: String, max: usize) -> String {
    if note.len() <= max {
        return note;
    }
    let mut cut = max.saturating_sub('…'.len_utf8());
    while !note.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut s = note[..cut].to_string();
    s.push('…');
    s
}

/// Events go out in the background, as client-go's recorder sends them: a pass does not wait for the API
/// server to store an Event before its next Graph call. Events about one object keep their order (one
/// object, one publisher); different objects' events go out in parallel.
#[derive(Clone)]
pub struct Events {
    shards: Arc<Vec<tokio::sync::mpsc::Sender<(Event, ObjectReference)>>>,
}

impl Events {
    /// Publishers, each with its own queue.
    const SHARDS: usize = 8;
    /// Events queued per publisher before new ones are dropped (and logged).
    const QUEUE: usize = 1024;

    /// Starts the publishers on the current runtime.
    pub fn spawn(recorder: Recorder) -> Events {
        Self::spawn_with_drain(recorder).0
    }

    /// Starts the publishers and returns, besides the sender, what waits for them to send what is
    /// queued once every sender is gone.
    pub fn spawn_with_drain(recorder: Recorder) -> (Events, EventsDrain) {
        let mut handles = Vec::new();
        let shards = (0..Self::SHARDS)
            .map(|_| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<(Event, ObjectReference)>(Self::QUEUE);
                let recorder = recorder.clone();
                handles.push(tokio::spawn(async move {
                    while let Some((ev, reference)) = rx.recv().await {
                        if let Err(e) = recorder.publish(&ev, &reference).await {
                            tracing::warn!(
                                name = reference.name.as_deref().unwrap_or_default(),
                                reason = %ev.reason,
                                error = %e,
                                "failed to publish event"
                            );
                        }
                    }
                }));
                tx
            })
            .collect();
        (
            Events {
                shards: Arc::new(shards),
            },
            EventsDrain { handles },
        )
    }

    /// Queues an Event about `obj`.
    pub fn notify<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: Reason,
        action: &str,
        note: String,
    ) {
        self.send(
            Event {
                type_,
                reason: reason.as_str().into(),
                note: Some(note),
                action: action.into(),
                secondary: None,
            },
            obj.object_ref(&()),
        );
    }

    /// Queues an Event (its note bounded); a full queue drops it with a warning (Events are best effort).
    pub fn send(&self, mut ev: Event, reference: ObjectReference) {
        ev.note = ev.note.map(bounded_note);
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&reference.namespace, &reference.name).hash(&mut h);
        let shard = &self.shards[(h.finish() as usize) % self.shards.len()];
        if let Err(e) = shard.try_send((ev, reference)) {
            let (ev, reference) = match e {
                tokio::sync::mpsc::error::TrySendError::Full(x)
                | tokio::sync::mpsc::error::TrySendError::Closed(x) => x,
            };
            tracing::warn!(
                name = reference.name.as_deref().unwrap_or_default(),
                reason = %ev.reason,
                "event dropped: the event queue is full"
            );
        }
    }
}

/// Waits for the Event publishers to send what is queued.
pub struct EventsDrain {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl EventsDrain {
    /// Waits until every queued Event is sent, or `timeout` passes (queued Events are then dropped).
    /// Only returns early once every [`Events`] sender is gone.
    pub async fn wait(self, timeout: Duration) {
        let all = futures::future::join_all(self.handles);
        if tokio::time::timeout(timeout, all).await.is_err() {
            tracing::warn!("some Events were not sent before shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_bounded_at_a_character_boundary() {
        let short = "fine".to_string();
        assert_eq!(bounded_note(short.clone()), short);
        let long = "é".repeat(2000);
        let cut = bounded_note(long);
        assert!(cut.len() <= MAX_NOTE, "{}", cut.len());
        assert!(cut.ends_with('…'));
    }
}
