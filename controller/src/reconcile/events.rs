//! Kubernetes Events: sent in the background, in order per object, with notes bounded to what the API
//! server accepts.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

use super::reasons::Reason;

/// The longest Event note `events.k8s.io/v1` accepts (1 KiB); longer notes are cut, never refused.
pub const MAX_NOTE: usize = 1024;

/// `note` cut to [`MAX_NOTE`] bytes at a character boundary, with an ellipsis when cut.
pub fn bounded_note(note: String) -> String {
    bounded(note, MAX_NOTE)
}

/// A Warning's note: the message, cut so that the link to the reason's entry in the documentation
/// always fits after it (the link is what a reader follows; the cut never drops it).
pub fn warning_note(reason: Reason, note: String) -> String {
    let link = format!(" (docs: {})", reason.docs_url());
    let mut note = bounded(note, MAX_NOTE.saturating_sub(link.len()));
    note.push_str(&link);
    note
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
    pub fn spawn(client: kube::Client, reporter: Reporter) -> Events {
        Self::spawn_with_drain(client, reporter).0
    }

    /// Starts the publishers and returns, besides the sender, what waits for them to send what is
    /// queued once every sender is gone.
    pub fn spawn_with_drain(client: kube::Client, reporter: Reporter) -> (Events, EventsDrain) {
        let mut handles = Vec::new();
        let shards = (0..Self::SHARDS)
            .map(|_| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<(Event, ObjectReference)>(Self::QUEUE);
                // An object's Events all go through one shard, so each shard keeps its own series.
                let mut recorder = Publisher::new(client.clone(), reporter.clone());
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
        let note = match type_ {
            EventType::Warning => warning_note(reason, note),
            EventType::Normal => note,
        };
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

/// How long an Event is remembered: the same Event again within it is counted in its series.
const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);

/// What makes two Events the same occurrence: kube-runtime's recorder leaves the note out, so Events
/// with the same reason and different notes (two refused values, two invalid fields) became one
/// series that kept showing the first note. client-go's events/v1 recorder keys on the note too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    warning: bool,
    reason: String,
    action: String,
    note: Option<String>,
    regarding: (Option<String>, Option<String>, Option<String>, Option<String>),
}

/// Publishes `events.k8s.io/v1` Events: a new one for each distinct Event, a series count on the one
/// already sent for a repeat within [`SERIES_TTL`].
struct Publisher {
    client: kube::Client,
    reporter: Reporter,
    sent: HashMap<SeriesKey, K8sEvent>,
}

impl Publisher {
    fn new(client: kube::Client, reporter: Reporter) -> Self {
        Publisher {
            client,
            reporter,
            sent: HashMap::new(),
        }
    }

    async fn publish(&mut self, ev: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        self.sent.retain(|_, e| {
            let last = e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.event_time.as_ref().map(|t| t.0));
            last.is_none_or(|t| t + SERIES_TTL > now)
        });
        let key = SeriesKey {
            warning: ev.type_ == EventType::Warning,
            reason: ev.reason.clone(),
            action: ev.action.clone(),
            note: ev.note.clone(),
            regarding: (
                reference.namespace.clone(),
                reference.name.clone(),
                reference.uid.clone(),
                reference.kind.clone(),
            ),
        };
        let api: Api<K8sEvent> = Api::namespaced(
            self.client.clone(),
            reference.namespace.as_deref().unwrap_or("default"),
        );
        let event = match self.sent.get(&key) {
            Some(e) => {
                let mut event = e.clone();
                event.series = Some(EventSeries {
                    count: e.series.as_ref().map_or(2, |s| s.count + 1),
                    last_observed_time: MicroTime(now),
                });
                let name = event.metadata.name.clone().unwrap_or_default();
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&event))
                    .await?;
                event
            }
            None => {
                let event = self.generate(ev, reference, now);
                api.create(&PostParams::default(), &event).await?;
                event
            }
        };
        self.sent.insert(key, event);
        Ok(())
    }

    fn generate(&self, ev: &Event, reference: &ObjectReference, now: Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    reference.name.as_deref().unwrap_or(&self.reporter.controller),
                    now.as_nanosecond()
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                if ev.type_ == EventType::Warning {
                    "Warning"
                } else {
                    "Normal"
                }
                .into(),
            ),
            related: ev.secondary.clone(),
            ..Default::default()
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

    #[test]
    fn a_warning_links_its_reason_where_the_cut_cannot_drop_it() {
        let reason = Reason::ROLLOUT_HALTED;
        let short = warning_note(reason, "halted".into());
        assert_eq!(
            short,
            format!(
                "halted (docs: {}/reasons.html#rollout-halted)",
                super::super::reasons::DOCS_BASE
            )
        );
        let long = warning_note(reason, "é".repeat(2000));
        assert!(long.len() <= MAX_NOTE, "{}", long.len());
        assert!(long.ends_with("#rollout-halted)"), "{long}");
        assert!(long.contains("… (docs: "));
        assert_eq!(bounded_note(long.clone()), long, "sending keeps it whole");
    }
}
