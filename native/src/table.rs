//! A streaming driver's changelog-backed table: bytes by key, each key at the partition that
//! owns it, with the writes of the open transaction undone when it aborts.
//!
//! The worker keeps two (tenant states, the duplicate memory); the batch driver reads both and
//! writes the duplicate memory's entries itself, so a batch's lookups and writes never leave
//! Rust. The table is what the changelog holds, restored record by record on assignment; it
//! is not a cache: whatever it lacks was never written.

use std::collections::hash_map::Entry as Slot;
use std::hash::Hasher;

use crate::fxhash::{FxHashMap, FxHasher};

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    partition: i64,
    value: Box<[u8]>,
}

/// Bytes by key, with the open transaction's writes undoable.
///
/// Keyed by the key's 64-bit hash, computed once: the `seen` table grows by an entry per
/// input, and a hash table that grows rehashes every entry, which for byte-string keys means
/// reading each key again (a cache miss apiece on millions of them). A key whose hash another
/// key already holds goes to `spill`; each key is in exactly one of the two.
#[derive(Debug, Default)]
pub struct Table {
    data: FxHashMap<u64, (Box<[u8]>, Entry)>,
    spill: FxHashMap<Box<[u8]>, Entry>,
    /// Each write of the open transaction with what it replaced, in order (undone in reverse,
    /// so a key written twice gets back its value from before the first write).
    undo: Vec<(Box<[u8]>, Option<Entry>)>,
}

fn hash_of(key: &[u8]) -> u64 {
    #[cfg(test)]
    if key.starts_with(b"same-hash:") {
        return 7; // the tests' colliding keys
    }
    let mut h = FxHasher::default();
    h.write(key);
    h.finish()
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    fn entry(&self, key: &[u8]) -> Option<&Entry> {
        match self.data.get(&hash_of(key)) {
            Some((k, e)) if **k == *key => Some(e),
            _ if self.spill.is_empty() => None,
            _ => self.spill.get(key),
        }
    }

    /// Set `key`, giving back what it held.
    fn insert(&mut self, key: Box<[u8]>, entry: Entry) -> Option<Entry> {
        if !self.spill.is_empty() && self.spill.contains_key(&key) {
            return self.spill.insert(key, entry);
        }
        match self.data.entry(hash_of(&key)) {
            Slot::Vacant(v) => {
                v.insert((key, entry));
                None
            }
            Slot::Occupied(mut o) if *o.get().0 == *key => {
                Some(std::mem::replace(&mut o.get_mut().1, entry))
            }
            Slot::Occupied(_) => self.spill.insert(key, entry),
        }
    }

    fn remove(&mut self, key: &[u8]) {
        match self.data.entry(hash_of(key)) {
            Slot::Occupied(o) if *o.get().0 == *key => {
                o.remove();
            }
            _ => {
                self.spill.remove(key);
            }
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entry(key).map(|e| &*e.value)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.entry(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.data.len() + self.spill.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write `key` in the open transaction (undone by [`Table::rollback`]).
    pub fn put(&mut self, partition: i64, key: Box<[u8]>, value: Box<[u8]>) {
        let before = self.insert(key.clone(), Entry { partition, value });
        self.undo.push((key, before));
    }

    /// A changelog record read back on assignment (`None`: a tombstone); not undoable.
    pub fn restored(&mut self, partition: i64, key: Box<[u8]>, value: Option<Box<[u8]>>) {
        match value {
            Some(value) => {
                self.insert(key, Entry { partition, value });
            }
            None => self.remove(&key),
        }
    }

    /// The open transaction committed: its writes stay.
    pub fn committed(&mut self) {
        self.undo.clear();
    }

    /// The open transaction aborted: every key it wrote gets back its value from before.
    pub fn rollback(&mut self) {
        while let Some((key, before)) = self.undo.pop() {
            match before {
                Some(entry) => {
                    self.insert(key, entry);
                }
                None => self.remove(&key),
            }
        }
    }

    /// Forget the keys of `partitions` (they went to another worker).
    pub fn drop_partitions(&mut self, partitions: &[i64]) {
        if !partitions.is_empty() {
            self.data
                .retain(|_, (_, e)| !partitions.contains(&e.partition));
            self.spill.retain(|_, e| !partitions.contains(&e.partition));
        }
    }

    /// The (key, value) pairs of `partition`, in no particular order.
    pub fn partition_items(&self, partition: i64) -> impl Iterator<Item = (&[u8], &[u8])> {
        let kept = self.data.values().map(|(k, e)| (k, e));
        kept.chain(self.spill.iter())
            .filter(move |(_, e)| e.partition == partition)
            .map(|(k, e)| (&**k, &*e.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    #[test]
    fn rollback_gives_back_the_values_from_before_the_transaction() {
        let mut t = Table::new();
        t.put(0, b("a"), b("1"));
        t.committed();
        t.put(0, b("a"), b("2"));
        t.put(0, b("a"), b("3"));
        t.put(1, b("b"), b("x"));
        t.rollback();
        assert_eq!(t.get(b"a"), Some(&b"1"[..]));
        assert_eq!(t.get(b"b"), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn restored_records_and_tombstones_are_not_undone() {
        let mut t = Table::new();
        t.restored(2, b("a"), Some(b("1")));
        t.restored(2, b("b"), Some(b("2")));
        t.restored(2, b("b"), None);
        t.rollback();
        assert_eq!(t.get(b"a"), Some(&b"1"[..]));
        assert!(!t.contains(b"b"));
    }

    #[test]
    fn keys_of_one_hash_are_all_kept_apart() {
        let mut t = Table::new();
        t.put(0, b("same-hash:a"), b("1"));
        t.put(1, b("same-hash:b"), b("2"));
        t.put(0, b("same-hash:b"), b("3"));
        assert_eq!(
            (t.get(b"same-hash:a"), t.get(b"same-hash:b")),
            (Some(&b"1"[..]), Some(&b"3"[..]))
        );
        assert_eq!(t.len(), 2);
        t.committed();
        // the first one goes; the other, spilled, is still found and can be written again
        t.restored(0, b("same-hash:a"), None);
        assert_eq!(t.get(b"same-hash:a"), None);
        t.put(0, b("same-hash:b"), b("4"));
        t.put(0, b("same-hash:c"), b("5"));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(b"same-hash:b"), Some(&b"4"[..]));
        t.rollback();
        assert_eq!(t.get(b"same-hash:b"), Some(&b"3"[..]));
        assert_eq!(t.get(b"same-hash:c"), None);
        assert_eq!(
            t.partition_items(0).collect::<Vec<_>>(),
            vec![(&b"same-hash:b"[..], &b"3"[..])]
        );
        t.drop_partitions(&[0]);
        assert!(t.is_empty());
    }

    #[test]
    fn dropping_a_partition_keeps_the_others() {
        let mut t = Table::new();
        t.put(0, b("a"), b("1"));
        t.put(1, b("b"), b("2"));
        t.committed();
        t.drop_partitions(&[0]);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.partition_items(1).collect::<Vec<_>>(),
            vec![(&b"b"[..], &b"2"[..])]
        );
        assert_eq!(t.partition_items(0).count(), 0);
    }
}
