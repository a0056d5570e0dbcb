//! Many tenants on one virtual clock: the driver behind `simulate` (and the tests).
//!
//! It owns what spans tenants: validation, the global clock of a sorted input, `out_of_order`,
//! and the order in which tenants' timers fire at one instant (the order tenants first
//! appeared, edge rule 13).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::fxhash::FxHashMap;
use std::sync::Arc;

use crate::clock::Instant;
use crate::deck::Deck;
use crate::events::parse_event;
use crate::pystr::is_py_ascii_space;
use crate::records::{dead_letter_json, with_topic, Output, Topic};
use crate::tenant::{Due, Tenant, AFTER, EVENTS};

pub struct Engine {
    pub deck: Arc<Deck>,
    /// Tenants in order of first appearance (their index is their timer tie-break).
    pub tenants: Vec<Tenant>,
    index: FxHashMap<String, usize>,
    heap: BinaryHeap<Reverse<(Instant, u8, usize)>>,
    queued: FxHashMap<usize, Due>,
    pub clock: Option<Instant>,
    /// The records of the timers being fired (kept for its capacity).
    scratch: Vec<Output>,
}

impl Engine {
    pub fn new(deck: Arc<Deck>) -> Engine {
        Engine {
            deck,
            tenants: Vec::new(),
            index: FxHashMap::default(),
            heap: BinaryHeap::new(),
            queued: FxHashMap::default(),
            clock: None,
            scratch: Vec::new(),
        }
    }

    fn tenant_index(&mut self, tenant_id: &str) -> usize {
        if let Some(&i) = self.index.get(tenant_id) {
            return i;
        }
        self.tenants.push(Tenant::new(tenant_id));
        self.index
            .insert(tenant_id.to_owned(), self.tenants.len() - 1);
        self.tenants.len() - 1
    }

    fn reschedule(&mut self, ti: usize) {
        match self.tenants[ti].next_due(&self.deck) {
            None => {
                self.queued.remove(&ti);
            }
            Some(due) => {
                if self.queued.get(&ti) != Some(&due) {
                    self.heap.push(Reverse((due.0.clone(), due.1, ti)));
                    self.queued.insert(ti, due);
                    if self.heap.len() > 4 * self.queued.len() + 1024 {
                        self.compact();
                    }
                }
            }
        }
    }

    /// Rebuild the heap from the plans: one entry per tenant, stale ones dropped (plans that
    /// flip would otherwise pile up entries that only leave when their instant passes).
    fn compact(&mut self) {
        self.heap = self
            .queued
            .iter()
            .map(|(&ti, (at, ph))| Reverse((at.clone(), *ph, ti)))
            .collect();
    }

    /// Fire every tenant's timers due before (until, phase), globally in time order.
    pub fn run_until(&mut self, until: &Instant, phase: u8, emit: &mut impl FnMut(Topic, &[u8])) {
        let mut fired = std::mem::take(&mut self.scratch);
        while let Some(Reverse((at, ph, _))) = self.heap.peek() {
            if (at, *ph) >= (until, phase) {
                break;
            }
            let Some(Reverse((at, ph, ti))) = self.heap.pop() else {
                break;
            };
            match self.queued.get(&ti) {
                Some((qa, qp)) if *qa == at && *qp == ph => {}
                _ => continue, // stale entry: the tenant was re-planned since
            }
            self.queued.remove(&ti);
            self.tenants[ti].fire(&self.deck, &at, ph, &mut fired);
            for (topic, payload) in fired.drain(..) {
                emit(topic, &payload);
            }
            self.reschedule(ti);
        }
        self.scratch = fired;
    }

    /// One input line: validate, move the clock (firing timers), apply. Each record goes to
    /// `emit` as it is made; what the input emitted is then moved into its tenant's
    /// duplicate memory (not copied: `simulate` keeps every input's outputs for good).
    pub fn feed(&mut self, raw: &[u8], line: i128, emit: &mut impl FnMut(Topic, &[u8])) {
        let ev = match parse_event(raw, self.deck.currency.as_deref()) {
            Ok(ev) => ev,
            Err(rej) => {
                let dead = dead_letter_json(&rej.reason, raw, Some(line), rej.tenant_id.as_deref());
                emit(Topic::DeadLetters, &dead);
                return;
            }
        };
        if self.clock.as_ref().is_some_and(|c| ev.ts < *c) {
            let dead = dead_letter_json("out_of_order", raw, Some(line), Some(&ev.tenant_id));
            emit(Topic::DeadLetters, &dead);
            return;
        }
        self.run_until(&ev.ts, EVENTS, emit);
        self.clock = Some(ev.ts.clone());
        let ti = self.tenant_index(&ev.tenant_id);
        let applied = self.tenants[ti].apply(&self.deck, &ev);
        for (topic, payload) in &applied.outputs {
            emit(*topic, payload);
        }
        if let Some(reason) = applied.reject {
            let dead = dead_letter_json(reason, raw, Some(line), Some(&ev.tenant_id));
            emit(Topic::DeadLetters, &dead);
        }
        if let Some(key) = applied.remember {
            self.tenants[ti].seen.insert(key, applied.outputs);
        }
        self.reschedule(ti);
    }

    /// End of input: call timers due at the last instant still fire (edge rule 12).
    /// The index of a tenant by id, if it has appeared.
    pub fn tenant(&self, tenant_id: &str) -> Option<&Tenant> {
        self.index.get(tenant_id).map(|&i| &self.tenants[i])
    }

    pub fn finish(&mut self, emit: &mut impl FnMut(Topic, &[u8])) {
        if let Some(clock) = self.clock.clone() {
            self.run_until(&clock, AFTER, emit);
        }
    }
}

/// Whether a line (without its newline) is blank: empty or only ASCII whitespace.
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| is_py_ascii_space(b))
}

/// A line without its trailing `\r` and `\n` bytes (Python's `rstrip(b"\r\n")`).
pub fn trim_newline(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |p| p + 1);
    &line[..end]
}

/// `simulate` over a whole events text, fed in pieces: each call takes whole lines and
/// appends the simulate lines (`{"topic":…,…}\n`) of everything they caused to `sink`.
pub struct Simulation {
    pub engine: Engine,
    line: i128,
}

/// Append one simulate line: the record with `"topic"` first.
fn write_line(sink: &mut Vec<u8>, topic: Topic, payload: &[u8]) {
    with_topic(sink, topic, payload);
    sink.push(b'\n');
}

impl Simulation {
    pub fn new(deck: Arc<Deck>) -> Simulation {
        Simulation {
            engine: Engine::new(deck),
            line: 0,
        }
    }

    /// Feed whole lines (a text whose last line ends with `\n`, or the file's last piece).
    pub fn feed_lines(&mut self, text: &[u8], sink: &mut Vec<u8>) {
        let mut emit = |topic: Topic, payload: &[u8]| write_line(sink, topic, payload);
        for piece in text.split_inclusive(|&b| b == b'\n') {
            self.line += 1;
            let raw = trim_newline(piece);
            if is_blank(raw) {
                continue;
            }
            self.engine.feed(raw, self.line, &mut emit);
        }
    }

    pub fn finish(&mut self, sink: &mut Vec<u8>) {
        self.engine
            .finish(&mut |topic: Topic, payload: &[u8]| write_line(sink, topic, payload));
    }
}
