//! What this process last wrote to each object. The reflector's copy of an object lags the writes this
//! process makes to it (the watch event comes after the write's answer, later still under load); a
//! pass that decided from such a copy would act on a state it already changed: create a second
//! deployment, adopt one another object holds, skip a status write. Every write records its answer
//! here, and admission reads the object from the API server when the store's copy is not that one.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The resourceVersion of each object (by uid) as this process last wrote it.
#[derive(Debug, Default)]
pub struct LastWrites(Mutex<HashMap<String, String>>);

impl LastWrites {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a write's answer.
    pub fn record(&self, meta: &ObjectMeta) {
        if let (Some(uid), Some(rv)) = (&meta.uid, &meta.resource_version) {
            self.lock().insert(uid.clone(), rv.clone());
        }
    }

    /// Forgets an object (deleted, or no longer this process's to write).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Whether `meta` is the copy this process last wrote, or one of an object it never wrote.
    pub fn is_current(&self, meta: &ObjectMeta) -> bool {
        let Some(uid) = &meta.uid else { return true };
        self.lock()
            .get(uid)
            .is_none_or(|rv| meta.resource_version.as_ref() == Some(rv))
    }

    /// Objects tracked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: &str, rv: &str) -> ObjectMeta {
        ObjectMeta {
            uid: Some(uid.into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_copy_is_current_when_it_is_the_last_write() {
        let w = LastWrites::default();
        assert!(
            w.is_current(&meta("a", "1")),
            "never written: the store's copy is all there is"
        );
        w.record(&meta("a", "5"));
        assert!(!w.is_current(&meta("a", "4")), "older than our write");
        assert!(w.is_current(&meta("a", "5")));
        w.forget("a");
        assert!(w.is_current(&meta("a", "4")));
    }
}
