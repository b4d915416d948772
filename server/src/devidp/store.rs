//! A bounded in-memory map whose entries expire: pending login requests and issued codes.

use std::collections::HashMap;

/// The map is at its cap even after expired entries were pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoreFull;

struct Entry<V> {
    expires_at: u64,
    value: V,
}

pub(super) struct ExpiringMap<V> {
    entries: HashMap<String, Entry<V>>,
    cap: usize,
}

impl<V> ExpiringMap<V> {
    pub(super) fn new(cap: usize) -> Self {
        ExpiringMap { entries: HashMap::new(), cap }
    }

    /// Drops every entry whose time is up (an entry expires at `expires_at`, not one second later).
    fn prune(&mut self, now: u64) {
        self.entries.retain(|_, entry| entry.expires_at > now);
    }

    pub(super) fn insert(&mut self, key: String, value: V, now: u64, ttl_secs: u64) -> Result<(), StoreFull> {
        self.prune(now);
        if self.entries.len() >= self.cap {
            return Err(StoreFull);
        }
        self.entries.insert(key, Entry { expires_at: now.saturating_add(ttl_secs), value });
        Ok(())
    }

    /// The live entry under `key`, if any.
    pub(super) fn get_mut(&mut self, key: &str, now: u64) -> Option<&mut V> {
        self.prune(now);
        self.entries.get_mut(key).map(|entry| &mut entry.value)
    }

    pub(super) fn remove(&mut self, key: &str, now: u64) -> Option<V> {
        self.prune(now);
        self.entries.remove(key).map(|entry| entry.value)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_cap_holds() {
        let mut map = ExpiringMap::new(2);
        map.insert("a".into(), 1, 100, 10).unwrap();
        map.insert("b".into(), 2, 100, 20).unwrap();
        assert_eq!(map.insert("c".into(), 3, 105, 10), Err(StoreFull));
        assert_eq!(map.get_mut("a", 109).copied(), Some(1));
        assert_eq!(map.get_mut("a", 110), None);
        // "a" was pruned, so there is room again.
        map.insert("c".into(), 3, 110, 10).unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map.remove("b", 111), Some(2));
        assert_eq!(map.remove("b", 111), None);
    }
}
