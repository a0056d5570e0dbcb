//! A streaming driver's changelog-backed table: bytes by key, each key at the partition that
//! owns it, with the writes of the open transaction undone when it aborts.
//!
//! The worker keeps two (tenant states, the duplicate memory); the batch driver reads both and
//! writes the duplicate memory's entries itself, so a batch's lookups and writes never leave
//! Rust. The table is what the changelog holds, restored record by record on assignment; it
//! is not a cache: whatever it lacks was never written.

use crate::fxhash::FxHashMap;

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    partition: i64,
    value: Box<[u8]>,
}

/// Bytes by key, with the open transaction's writes undoable.
#[derive(Debug, Default)]
pub struct Table {
    data: FxHashMap<Box<[u8]>, Entry>,
    /// Each write of the open transaction with what it replaced, in order (undone in reverse,
    /// so a key written twice gets back its value from before the first write).
    undo: Vec<(Box<[u8]>, Option<Entry>)>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.data.get(key).map(|e| &*e.value)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.data.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Write `key` in the open transaction (undone by [`Table::rollback`]).
    pub fn put(&mut self, partition: i64, key: Box<[u8]>, value: Box<[u8]>) {
        let before = self.data.insert(key.clone(), Entry { partition, value });
        self.undo.push((key, before));
    }

    /// A changelog record read back on assignment (`None`: a tombstone); not undoable.
    pub fn restored(&mut self, partition: i64, key: Box<[u8]>, value: Option<Box<[u8]>>) {
        match value {
            Some(value) => {
                self.data.insert(key, Entry { partition, value });
            }
            None => {
                self.data.remove(&key);
            }
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
                    self.data.insert(key, entry);
                }
                None => {
                    self.data.remove(&key);
                }
            }
        }
    }

    /// Forget the keys of `partitions` (they went to another worker).
    pub fn drop_partitions(&mut self, partitions: &[i64]) {
        if !partitions.is_empty() {
            self.data.retain(|_, e| !partitions.contains(&e.partition));
        }
    }

    /// The (key, value) pairs of `partition`, in no particular order.
    pub fn partition_items(&self, partition: i64) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.data
            .iter()
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
