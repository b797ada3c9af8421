//! Things the identity provider remembers until they expire: spent `jti`s, authorization
//! codes, refresh tokens.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

/// Values remembered each until its expiry (seconds), keyed by a SHA-256 digest (fixed size
/// whatever the input, and never the secret itself: a code or refresh token is not kept).
/// Indexed by expiry too, so dropping the expired costs only them: no request ever scans the
/// whole store.
pub(crate) struct ExpiringMap<V> {
    entries: HashMap<[u8; 32], (u64, V)>,
    by_expiry: BTreeMap<u64, HashSet<[u8; 32]>>,
}

impl<V> Default for ExpiringMap<V> {
    fn default() -> Self {
        ExpiringMap {
            entries: HashMap::new(),
            by_expiry: BTreeMap::new(),
        }
    }
}

/// The key of `parts`: SHA-256 over them, each followed by a zero byte so that fields
/// cannot run into each other.
pub(crate) fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().into()
}

impl<V> ExpiringMap<V> {
    /// Forgets every entry whose expiry is before `now`.
    pub(crate) fn drop_expired(&mut self, now: u64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            let (expiry, keys) = entry.remove_entry();
            for key in keys {
                if self.entries.get(&key).is_some_and(|(e, _)| *e == expiry) {
                    self.entries.remove(&key);
                }
            }
        }
    }

    pub(crate) fn contains(&self, key: &[u8; 32]) -> bool {
        self.entries.contains_key(key)
    }

    pub(crate) fn get_mut(&mut self, key: &[u8; 32]) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(_, value)| value)
    }

    /// Forgets `key` now, from the index too.
    pub(crate) fn remove(&mut self, key: &[u8; 32]) -> Option<V> {
        let (expiry, value) = self.entries.remove(key)?;
        if let Some(keys) = self.by_expiry.get_mut(&expiry) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_expiry.remove(&expiry);
            }
        }
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn insert(&mut self, key: [u8; 32], expiry: u64, value: V) {
        self.entries.insert(key, (expiry, value));
        self.by_expiry.entry(expiry).or_default().insert(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_forgets_exactly_the_expired() {
        let mut store = ExpiringMap::<()>::default();
        let key = |jti: &str| digest(&["client", jti]);
        for (jti, expiry) in [("a", 10), ("b", 20), ("c", 20), ("d", 30)] {
            store.insert(key(jti), expiry, ());
        }
        assert_ne!(key("a"), digest(&["clien", "ta"]), "fields are separated");
        store.drop_expired(20);
        assert_eq!(store.len(), 3, "expiry 20 is still live at 20");
        assert!(!store.contains(&key("a")));
        assert!(store.contains(&key("b")) && store.contains(&key("c")));
        store.drop_expired(21);
        assert_eq!(store.len(), 1);
        assert_eq!(
            store.by_expiry.len(),
            1,
            "the index shrinks with the entries"
        );
        // A jti whose entry expired may be spent again, with its new expiry.
        store.insert(key("a"), 40, ());
        store.drop_expired(35);
        assert!(store.contains(&key("a")) && !store.contains(&key("d")));
        assert_eq!(store.len(), 1);
        // A removed entry leaves the index at once.
        store.insert(key("e"), 50, ());
        assert_eq!(store.remove(&key("e")), Some(()));
        assert!(!store.contains(&key("e")) && !store.by_expiry.contains_key(&50));
        assert_eq!(store.remove(&key("e")), None);
    }
}
