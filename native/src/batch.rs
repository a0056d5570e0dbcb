//! The streaming driver's interface: one call decides a batch of input records.
//!
//! The Kafka worker reads records (topic, partition, offset, key, value) and keeps two
//! changelog-backed tables of its own: tenant state bytes, and the duplicate memory
//! ("seen": the outputs each input emitted, for re-emission when it comes again). The core
//! stays pure (no I/O, no clock): the driver hands it the batch, in the order to decide it,
//! with read access to the two tables through [`Store`]; the core hands back every output
//! record, the seen entries to write, and each tenant the batch changed, with its next
//! wake-up instant and live call count. The changed tenants' state bytes (and account views)
//! are written when the driver asks for them ([`Driver::take_unsaved`]), once per tenant
//! however many batches changed it since: the driver asks just before it commits, as only
//! the last state of a transaction is ever read back. Timers fire through tick records in the
//! batch (topic `ticks`), so they take their place among the inputs; the driver decides
//! beforehand which ticks fire now (wall clock and broker offsets are its business).
//!
//! # Duplicate memory
//!
//! A seen entry lives in the driver's table under `tenant \x1f key` (the key as
//! [`Event::seen_key`] names it) and holds `@topic:offset\n` (the input that wrote it)
//! followed by the outputs in the state format. A tenant's state carries, among the driver's
//! members, `applied`: the last offset of each input topic the state includes. The driver
//! publishes a batch's seen entries before its tenant states, so a worker killed in between
//! leaves entries newer than the state; such an entry (offset above the state's `applied` for
//! its topic) is ignored, and the replayed input is decided again (the same bytes, as the core
//! is deterministic) instead of being taken for a duplicate whose effect the state never got.
//!
//! Before deciding an input the core looks up the keys it may consult (its own key, and for a
//! `call_end` its call's `call_start`): first among the entries this batch wrote (the driver
//! stores them only after the call), then in the store, and hands what it finds to the tenant
//! for that one input. The store is the only memory: the driver writes a batch's entries to
//! it before the next batch ([`Table`] in the worker). An entry that is malformed (a stamp or
//! outputs that do not parse) counts as absent: the input is decided.
//!
//! A tenant is read from the store the first time a batch touches it and then kept here until
//! [`Driver::forget`] (the driver calls it when its partitions are revoked).

use std::sync::Arc;

use crate::clock::Instant;
use crate::deck::Deck;
use crate::events::{self, Body, Event};
use crate::fxhash::FxHashMap;
use crate::json::{self, Value};
use crate::records::{dead_letter_json, Topic};
use crate::state;
use crate::table::Table;
use crate::tenant::{Tenant, AFTER, EVENTS};

/// The driver's tables, read by key (what the core writes comes back in [`Decided`], and
/// the driver stores it before its next batch: the core keeps no copy).
pub trait Store {
    /// A tenant's state bytes (key: the tenant id), or None.
    fn tenant(&mut self, tenant_id: &str) -> Option<Vec<u8>>;
    /// A seen entry (key: `tenant \x1f seen key`), or None.
    fn seen(&mut self, key: &[u8]) -> Option<Vec<u8>>;
}

/// The worker's two tables as the driver's store.
pub struct Tables<'a> {
    pub tenants: &'a Table,
    pub seen: &'a Table,
}

impl Store for Tables<'_> {
    fn tenant(&mut self, tenant_id: &str) -> Option<Vec<u8>> {
        self.tenants.get(tenant_id.as_bytes()).map(<[u8]>::to_vec)
    }
    fn seen(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        self.seen.get(key).map(<[u8]>::to_vec)
    }
}

/// Where an input record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Calls,
    Accounts,
    /// A timer tick: `{"tenant_id": …, "due": "<µs>" or "<num>/<den>"}`.
    Ticks,
}

impl Source {
    pub fn parse(name: &str) -> Option<Source> {
        Some(match name {
            "calls" => Source::Calls,
            "accounts" => Source::Accounts,
            "ticks" => Source::Ticks,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Calls => "calls",
            Source::Accounts => "accounts",
            Source::Ticks => "ticks",
        }
    }
}

/// One input record as the driver read it (`value` None: a tombstone).
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub source: Source,
    pub partition: i64,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// One output record: its tenant (the record key, None when unknown), topic and bytes;
/// `timed` when a timer emitted it (rather than the input itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Emitted {
    pub tenant_id: Option<String>,
    pub topic: Topic,
    pub payload: Vec<u8>,
    pub timed: bool,
}

/// A seen entry to write to the driver's table (and its changelog) at `partition`.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenWrite {
    pub partition: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A tenant the batch changed: its partition, the next instant it needs the clock (None: no
/// timer) and its live calls.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    pub tenant_id: String,
    pub partition: i64,
    pub next_due: Option<Instant>,
    pub live_calls: usize,
}

/// A tenant changed since the driver last saved: its state bytes to store at `partition`, and
/// its account view (`view.rs`) of those bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Unsaved {
    pub tenant_id: String,
    pub partition: i64,
    pub state: Vec<u8>,
    pub view: Vec<u8>,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct Decided {
    /// Every output record, in order.
    pub outputs: Vec<Emitted>,
    /// The seen entries written, in order (a later one for the same key replaces it).
    pub seen: Vec<SeenWrite>,
    /// Each changed tenant once, in order of first change.
    pub changed: Vec<Changed>,
    /// Per calls/accounts record, in order: the input's type, or `rejected`.
    pub kinds: Vec<(Source, &'static str)>,
}

/// A tenant and the driver's members of its state.
struct Slot {
    tenant: Tenant,
    partition: i64,
    /// Input topic -> the last offset the state includes (in the order first seen).
    applied: Vec<(String, i64)>,
    /// Changed since its state was last taken ([`Driver::take_unsaved`]).
    unsaved: bool,
}

impl Slot {
    fn applied(&self, topic: &str) -> i64 {
        self.applied
            .iter()
            .find(|(t, _)| t == topic)
            .map_or(-1, |(_, o)| *o)
    }

    fn set_applied(&mut self, topic: &str, offset: i64) {
        match self.applied.iter_mut().find(|(t, _)| t == topic) {
            Some(entry) => entry.1 = offset,
            None => self.applied.push((topic.to_owned(), offset)),
        }
    }

    /// The driver's members: `{"partition":…,"applied":{…}}`.
    fn extra(&self) -> Vec<u8> {
        let mut o = b"{\"partition\":".to_vec();
        o.extend_from_slice(itoa::Buffer::new().format(self.partition).as_bytes());
        o.extend_from_slice(b",\"applied\":{");
        for (i, (topic, offset)) in self.applied.iter().enumerate() {
            if i > 0 {
                o.push(b',');
            }
            json::write_str(&mut o, topic);
            o.push(b':');
            o.extend_from_slice(itoa::Buffer::new().format(*offset).as_bytes());
        }
        o.extend_from_slice(b"}}");
        o
    }
}

/// `applied` from the driver's members of a stored state (missing or odd members: none).
fn applied_of(extra: &[u8]) -> Vec<(String, i64)> {
    let Ok(Value::Object(doc)) = json::parse(extra) else {
        return Vec::new();
    };
    let Some(Value::Object(applied)) = doc.get("applied") else {
        return Vec::new();
    };
    applied
        .iter()
        .filter_map(|(k, v)| match v {
            Value::Int(n) => i64::try_from(*n).ok().map(|n| (k.to_owned(), n)),
            _ => None,
        })
        .collect()
}

/// The outputs of a stored seen entry, unless a batch whose state was lost wrote it.
fn remembered(data: &[u8], slot: &Slot) -> Option<Vec<crate::records::Output>> {
    let body = match data.strip_prefix(b"@") {
        Some(stamped) => {
            let nl = memchr::memchr(b'\n', stamped)?;
            let origin = std::str::from_utf8(&stamped[..nl]).ok()?;
            let (topic, offset) = origin.rsplit_once(':')?;
            let offset: i64 = offset.parse().ok()?;
            if offset > slot.applied(topic) {
                return None;
            }
            &stamped[nl + 1..]
        }
        None => data,
    };
    state::load_outputs(body).ok()
}

fn tick_of(raw: &[u8]) -> Option<(String, Instant)> {
    let Ok(Value::Object(tick)) = json::parse(raw) else {
        return None;
    };
    let tenant_id = match tick.get("tenant_id") {
        Some(Value::Str(s)) => s.to_string(),
        _ => return None,
    };
    let due = match tick.get("due") {
        Some(Value::Str(s)) => Instant::from_state_text(s)?,
        Some(Value::Int(n)) => Instant::Us(*n),
        _ => return None,
    };
    Some((tenant_id, due))
}

/// The tenants of one worker, decided a batch at a time (see the module docs).
pub struct Driver {
    deck: Arc<Deck>,
    tenants: FxHashMap<String, Slot>,
    /// The tenants whose `unsaved` is set, in order of first change.
    unsaved: Vec<String>,
}

/// The state of one `decide` call.
struct Run<'s, S: Store> {
    store: &'s mut S,
    out: Decided,
    /// Seen entries this batch wrote: key -> index in `out.seen`.
    written: FxHashMap<Vec<u8>, usize>,
    /// Changed tenants: id -> index in `out.changed` (filled in at the end).
    dirty: FxHashMap<String, usize>,
}

impl Driver {
    pub fn new(deck: Arc<Deck>) -> Driver {
        Driver {
            deck,
            tenants: FxHashMap::default(),
            unsaved: Vec::new(),
        }
    }

    /// Drop every tenant kept in memory, saved or not (they are read from the store again
    /// when needed): the driver's partitions were revoked, or its transaction aborted.
    pub fn forget(&mut self) {
        self.tenants.clear();
        self.unsaved.clear();
    }

    /// Each tenant changed since the last call, once, in order of first change: its state
    /// bytes and account view as of now.
    pub fn take_unsaved(&mut self) -> Vec<Unsaved> {
        let currency = self.deck.currency.as_deref();
        let mut out = Vec::with_capacity(self.unsaved.len());
        for tenant_id in std::mem::take(&mut self.unsaved) {
            let Some(slot) = self.tenants.get_mut(&tenant_id) else {
                continue;
            };
            slot.unsaved = false;
            let state = state::dump_tenant(&slot.tenant, &self.deck, &slot.extra());
            let view = crate::view::tenant_view(&slot.tenant, currency);
            out.push(Unsaved {
                partition: slot.partition,
                tenant_id,
                state,
                view,
            });
        }
        out
    }

    /// How many tenants are kept in memory.
    pub fn tenant_count(&self) -> usize {
        self.tenants.len()
    }

    /// Decide `records` in order. Err only when a stored tenant state does not load (the
    /// batch is then abandoned: the driver stops, nothing of it is published).
    pub fn decide<S: Store>(
        &mut self,
        records: &[Record<'_>],
        store: &mut S,
    ) -> Result<Decided, String> {
        let mut run = Run {
            store,
            out: Decided::default(),
            written: FxHashMap::default(),
            dirty: FxHashMap::default(),
        };
        for rec in records {
            self.decide_one(rec, &mut run)?;
        }
        let mut changed = std::mem::take(&mut run.out.changed);
        for c in &mut changed {
            if let Some(slot) = self.tenants.get_mut(&c.tenant_id) {
                c.partition = slot.partition;
                c.next_due = slot.tenant.next_due(&self.deck).map(|d| d.0);
                c.live_calls = slot.tenant.live.len();
                if !slot.unsaved {
                    slot.unsaved = true;
                    self.unsaved.push(c.tenant_id.clone());
                }
            }
        }
        run.out.changed = changed;
        Ok(run.out)
    }

    fn slot<S: Store>(
        &mut self,
        tid: &str,
        partition: i64,
        run: &mut Run<'_, S>,
    ) -> Result<&mut Slot, String> {
        if !self.tenants.contains_key(tid) {
            let slot = match run.store.tenant(tid) {
                None => Slot {
                    tenant: Tenant::new(tid),
                    partition,
                    applied: Vec::new(),
                    unsaved: false,
                },
                Some(data) => {
                    let (tenant, extra) = state::load_tenant(&data, &self.deck)
                        .map_err(|e| format!("tenant {tid}: {}", e.0))?;
                    Slot {
                        tenant,
                        partition,
                        applied: applied_of(&extra),
                        unsaved: false,
                    }
                }
            };
            self.tenants.insert(tid.to_owned(), slot);
        }
        if !run.dirty.contains_key(tid) {
            run.dirty.insert(tid.to_owned(), run.out.changed.len());
            run.out.changed.push(Changed {
                tenant_id: tid.to_owned(),
                partition,
                next_due: None,
                live_calls: 0,
            });
        }
        let slot = self
            .tenants
            .get_mut(tid)
            .ok_or_else(|| format!("tenant {tid}: not kept"))?;
        slot.partition = partition;
        Ok(slot)
    }

    fn decide_one<S: Store>(
        &mut self,
        rec: &Record<'_>,
        run: &mut Run<'_, S>,
    ) -> Result<(), String> {
        let deck = self.deck.clone();
        let dead = |reason: &str, raw: &[u8], tenant: Option<&str>| Emitted {
            tenant_id: tenant.map(str::to_owned),
            topic: Topic::DeadLetters,
            payload: dead_letter_json(reason, raw, Some(i128::from(rec.offset)), tenant),
            timed: false,
        };
        if rec.source == Source::Ticks {
            let Some((tid, due)) = rec.value.and_then(tick_of) else {
                return Ok(()); // not a tick the driver wrote: nothing to fire
            };
            let slot = self.slot(&tid, rec.partition, run)?;
            let mut fired = Vec::new();
            slot.tenant.advance(&deck, &due, AFTER, &mut fired);
            push(&mut run.out.outputs, &tid, fired, true);
            return Ok(());
        }
        let key_bytes = rec.key.map_or(0, <[u8]>::len);
        if key_bytes + rec.value.map_or(0, <[u8]>::len) > events::INPUT_MAX_BYTES {
            // neither key nor value is read, so the dead letter stays bounded
            run.out
                .outputs
                .push(dead("too_large", rec.value.unwrap_or(b""), None));
            run.out.kinds.push((rec.source, "rejected"));
            return Ok(());
        }
        let Some(raw) = rec.value else {
            // a tombstone: an input topic holds events, never deletions
            let claimed = rec.key.and_then(|k| std::str::from_utf8(k).ok());
            run.out.outputs.push(dead("tombstone", b"", claimed));
            run.out.kinds.push((rec.source, "rejected"));
            return Ok(());
        };
        let ev: Event = match events::parse_event(raw, deck.currency.as_deref()) {
            Ok(ev) => ev,
            Err(r) => {
                run.out
                    .outputs
                    .push(dead(&r.reason, raw, r.tenant_id.as_deref()));
                run.out.kinds.push((rec.source, "rejected"));
                return Ok(());
            }
        };
        let tid = ev.tenant_id.clone();
        if rec.key != Some(tid.as_bytes()) {
            // Keyed (so partitioned) as another tenant, or not keyed: deciding it would put
            // this tenant's state on a partition that is not its own, a second account.
            run.out.outputs.push(dead("key_mismatch", raw, Some(&tid)));
            run.out.kinds.push((rec.source, "rejected"));
            return Ok(());
        }
        run.out.kinds.push((rec.source, ev.body.type_name()));
        let topic = rec.source.as_str();
        let mut keys = vec![ev.seen_key()];
        if matches!(ev.body, Body::CallEnd) {
            keys.push(format!("call_start\u{1f}{}", ev.key));
        }
        let prefix = format!("{tid}\u{1f}");
        let mut found = Vec::new();
        for key in &keys {
            let full = [prefix.as_bytes(), key.as_bytes()].concat();
            let data = match run.written.get(&full) {
                Some(&i) => run.out.seen.get(i).map(|w| w.value.clone()),
                None => run.store.seen(&full),
            };
            found.push(data);
        }
        let slot = self.slot(&tid, rec.partition, run)?;
        let mut timed = Vec::new();
        slot.tenant.advance(&deck, &ev.ts, EVENTS, &mut timed);
        push(&mut run.out.outputs, &tid, timed, true);
        for (key, data) in keys.into_iter().zip(found) {
            if let Some(outputs) = data.and_then(|d| remembered(&d, slot)) {
                slot.tenant.seen.insert(key, outputs);
            }
        }
        let applied = slot.tenant.apply(&deck, &ev);
        if let Some(key) = &applied.remember {
            let mut value = format!("@{topic}:{}\n", rec.offset).into_bytes();
            value.extend_from_slice(&state::dump_outputs(&applied.outputs));
            let full = [prefix.as_bytes(), key.as_bytes()].concat();
            run.written.insert(full.clone(), run.out.seen.len());
            run.out.seen.push(SeenWrite {
                partition: rec.partition,
                key: full,
                value,
            });
        }
        // The entries it was handed are in the store (or this batch's writes), where the next
        // lookup finds them: the tenant keeps none, so its memory does not grow with the inputs.
        slot.tenant.seen.clear();
        if rec.offset > slot.applied(topic) {
            // a replay of an older input must not lower it
            slot.set_applied(topic, rec.offset);
        }
        push(&mut run.out.outputs, &tid, applied.outputs, false);
        if let Some(reason) = applied.reject {
            run.out.outputs.push(dead(reason, raw, Some(&tid)));
        }
        Ok(())
    }
}

fn push(out: &mut Vec<Emitted>, tid: &str, records: Vec<crate::records::Output>, timed: bool) {
    out.extend(records.into_iter().map(|(topic, payload)| Emitted {
        tenant_id: Some(tid.to_owned()),
        topic,
        payload,
        timed,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Tables {
        tenants: HashMap<Vec<u8>, Vec<u8>>,
        seen: HashMap<Vec<u8>, Vec<u8>>,
    }

    impl Store for Tables {
        fn tenant(&mut self, tenant_id: &str) -> Option<Vec<u8>> {
            self.tenants.get(tenant_id.as_bytes()).cloned()
        }
        fn seen(&mut self, key: &[u8]) -> Option<Vec<u8>> {
            self.seen.get(key).cloned()
        }
    }

    impl Tables {
        /// What the driver does with a batch: entries first, then (unless killed before)
        /// the states.
        fn save(&mut self, d: &Decided, states: Option<&[Unsaved]>) {
            for w in &d.seen {
                self.seen.insert(w.key.clone(), w.value.clone());
            }
            for u in states.unwrap_or_default() {
                self.tenants
                    .insert(u.tenant_id.as_bytes().to_vec(), u.state.clone());
            }
        }
    }

    fn deck() -> Arc<Deck> {
        let header: Vec<String> = crate::deck::COLUMNS.iter().map(|c| c.to_string()).collect();
        let row = [
            "1",
            "US",
            "US",
            "A",
            "geographic",
            "outbound",
            "0.06",
            "0",
            "USD",
            "1",
            "1",
            "",
            "",
        ]
        .iter()
        .map(|s| Some(s.to_string()))
        .collect();
        Arc::new(Deck::compile_rows("d.csv", &header, &[row], 2).unwrap())
    }

    fn funds(cid: &str, amount: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"add_funds","tenant_id":"t1","command_id":"{cid}","ts":"2026-11-24T10:00:00.000Z","amount":"{amount}","currency":"USD"}}"#
        )
        .into_bytes()
    }

    fn rec(offset: i64, value: &[u8]) -> Record<'_> {
        Record {
            source: Source::Accounts,
            partition: 2,
            offset,
            key: Some(b"t1"),
            value: Some(value),
        }
    }

    fn balance(state: &[u8], deck: &Deck) -> i128 {
        state::load_tenant(state, deck).unwrap().0.balance_micros
    }

    #[test]
    fn entries_stamped_and_states_carry_applied() {
        let deck = deck();
        let mut tables = Tables::default();
        let (a, b) = (funds("c1", "10"), funds("c2", "5"));
        let mut driver = Driver::new(deck.clone());
        let d = driver
            .decide(&[rec(0, &a), rec(1, &b)], &mut tables)
            .unwrap();
        assert_eq!(d.kinds, vec![(Source::Accounts, "add_funds"); 2]);
        assert_eq!(d.seen.len(), 2);
        assert_eq!(d.seen[1].key, b"t1\x1fcmd\x1fc2");
        assert!(d.seen[1].value.starts_with(b"@accounts:1\n"));
        assert_eq!(d.changed.len(), 1);
        let c = &d.changed[0];
        assert_eq!((c.partition, c.live_calls), (2, 0));
        let saved = driver.take_unsaved();
        assert_eq!(saved.len(), 1);
        let u = &saved[0];
        assert_eq!(u.partition, 2);
        assert_eq!(balance(&u.state, &deck), 15_000_000);
        let (_, extra) = state::load_tenant(&u.state, &deck).unwrap();
        assert_eq!(extra, br#"{"partition":2,"applied":{"accounts":1}}"#);
        assert_eq!(
            u.view,
            crate::view::account_view(&u.state, Some("USD")).unwrap()
        );
        assert!(driver.take_unsaved().is_empty(), "taken once");
    }

    #[test]
    fn a_tenant_changed_by_many_batches_is_saved_once_as_of_the_last() {
        let deck = deck();
        let mut tables = Tables::default();
        let mut driver = Driver::new(deck.clone());
        let (a, b) = (funds("c1", "10"), funds("c2", "5"));
        driver.decide(&[rec(0, &a)], &mut tables).unwrap();
        driver.decide(&[rec(1, &b)], &mut tables).unwrap();
        let saved = driver.take_unsaved();
        assert_eq!(saved.len(), 1);
        assert_eq!(balance(&saved[0].state, &deck), 15_000_000);
        driver
            .decide(&[rec(2, &funds("c3", "1"))], &mut tables)
            .unwrap();
        driver.forget();
        assert!(driver.take_unsaved().is_empty(), "forgotten unsaved");
    }

    #[test]
    fn duplicate_after_restore_and_replay_after_lost_state() {
        let deck = deck();
        let mut tables = Tables::default();
        let a = funds("c1", "10");
        let mut driver = Driver::new(deck.clone());
        let first = driver.decide(&[rec(0, &a)], &mut tables).unwrap();
        tables.save(&first, Some(&driver.take_unsaved()));
        // sent twice: a duplicate for a restarted worker, nothing added
        let mut driver = Driver::new(deck.clone());
        let again = driver.decide(&[rec(7, &a)], &mut tables).unwrap();
        assert_eq!(again.outputs, first.outputs);
        assert!(again.seen.is_empty());
        let saved = driver.take_unsaved();
        assert_eq!(balance(&saved[0].state, &deck), 10_000_000);
        // killed after a batch's entries, before its state: the replay is decided again
        let b = funds("c2", "5");
        let lost = Driver::new(deck.clone())
            .decide(&[rec(1, &b)], &mut tables)
            .unwrap();
        tables.save(&lost, None);
        let mut driver = Driver::new(deck.clone());
        let replay = driver.decide(&[rec(1, &b)], &mut tables).unwrap();
        assert_eq!(replay.outputs, lost.outputs);
        assert_eq!(replay.seen, lost.seen);
        let saved = driver.take_unsaved();
        assert_eq!(balance(&saved[0].state, &deck), 15_000_000);
    }

    #[test]
    fn rejected_records_are_dead_letters_and_change_nothing() {
        let deck = deck();
        let mut tables = Tables::default();
        let a = funds("c1", "10");
        let records = [
            Record {
                key: Some(b"t2"),
                ..rec(0, &a)
            },
            Record {
                value: None,
                ..rec(1, &a)
            },
            rec(2, b"{not json"),
            Record {
                source: Source::Ticks,
                ..rec(3, b"[]")
            },
            Record {
                source: Source::Ticks,
                key: None,
                ..rec(4, &[0xff, 0xfe])
            },
        ];
        let d = Driver::new(deck).decide(&records, &mut tables).unwrap();
        assert_eq!(d.kinds.len(), 3);
        assert!(d.kinds.iter().all(|k| k.1 == "rejected"));
        assert_eq!(d.outputs.len(), 3);
        assert!(d
            .outputs
            .iter()
            .all(|o| o.topic == Topic::DeadLetters && !o.timed));
        assert_eq!(d.outputs[0].tenant_id.as_deref(), Some("t1"));
        assert!(d.changed.is_empty() && d.seen.is_empty());
    }

    #[test]
    fn malformed_entries_and_states() {
        let deck = deck();
        let mut tables = Tables::default();
        for bad in [
            &b"@accounts\n[]"[..],
            b"@x:1",
            b"@accounts:zz\n[]",
            b"not outputs",
            b"@\xff:0\n",
        ] {
            tables
                .seen
                .insert(b"t1\x1fcmd\x1fc1".to_vec(), bad.to_vec());
            let a = funds("c1", "10");
            let d = Driver::new(deck.clone())
                .decide(&[rec(0, &a)], &mut tables)
                .unwrap();
            assert_eq!(d.seen.len(), 1, "{bad:?} is absent: the input is decided");
        }
        tables.tenants.insert(b"t1".to_vec(), b"{\"v\":1".to_vec());
        let a = funds("c1", "10");
        assert!(Driver::new(deck)
            .decide(&[rec(0, &a)], &mut tables)
            .is_err());
    }
}
