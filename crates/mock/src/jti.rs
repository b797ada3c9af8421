//! The `jti`s the token endpoint has accepted, remembered until their assertions expire.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

/// The `jti`s spent, each remembered until its assertion expires (plus skew) so that a replay
/// is refused while it could still be accepted. Indexed by expiry too, so dropping the expired
/// costs only them: no request ever scans the whole store. Keys are SHA-256 digests of
/// client id and `jti` (fixed size, whatever the `jti`).
#[derive(Default)]
pub(crate) struct JtiStore {
    expiry_of: HashMap<[u8; 32], u64>,
    by_expiry: BTreeMap<u64, Vec<[u8; 32]>>,
}

impl JtiStore {
    pub(crate) fn key(client_id: &str, jti: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(client_id.as_bytes())
            .chain_update([0])
            .chain_update(jti.as_bytes())
            .finalize()
            .into()
    }

    /// Forgets every `jti` whose expiry is before `now`.
    pub(crate) fn drop_expired(&mut self, now: u64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() >= now {
                break;
            }
            let (expiry, keys) = entry.remove_entry();
            for key in keys {
                if self.expiry_of.get(&key) == Some(&expiry) {
                    self.expiry_of.remove(&key);
                }
            }
        }
    }

    pub(crate) fn contains(&self, key: &[u8; 32]) -> bool {
        self.expiry_of.contains_key(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.expiry_of.len()
    }

    pub(crate) fn insert(&mut self, key: [u8; 32], expiry: u64) {
        self.expiry_of.insert(key, expiry);
        self.by_expiry.entry(expiry).or_default().push(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jti_store_forgets_exactly_the_expired() {
        let mut store = JtiStore::default();
        let key = |jti: &str| JtiStore::key("client", jti);
        for (jti, expiry) in [("a", 10), ("b", 20), ("c", 20), ("d", 30)] {
            store.insert(key(jti), expiry);
        }
        assert_ne!(
            key("a"),
            JtiStore::key("clien", "ta"),
            "fields are separated"
        );
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
        store.insert(key("a"), 40);
        store.drop_expired(35);
        assert!(store.contains(&key("a")) && !store.contains(&key("d")));
        assert_eq!(store.len(), 1);
    }
}
