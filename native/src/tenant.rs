//! The per-tenant decision core of accounts.md: pools, credit lots, live calls, auto-recharge.
//!
//! Pure and deterministic: no I/O and no clock of its own. A driver (simulate, the worker, a
//! test) hands it an `Event` via `apply`, or asks it to `fire` the timers due at an instant,
//! and gets back output records; `next_due` says when it must be woken next.
//!
//! Units carry their names: `*_us` instants/durations in microseconds (exact `Instant`s,
//! rational when a shared pool empties between microseconds), `*_micros` money.

use crate::fxhash::{FxHashMap, FxHashSet};

use crate::clock::{add_twelve_months, month_label, next_month_start, Instant, US_PER_S};
use crate::deck::{Deck, Rate};
use crate::events::{Body, Event};
use crate::money::MICROS_PER_CENTI_CENT;
use crate::pricing::{billed_seconds, is_e164, price_micros, rate_for, Kind};
use crate::records::{disconnect_json, notification, payment_json, Charge, Output, Topic};

/// Phases of one instant (edge rule 1): calendar timers, then input events, then call timers.
pub const CALENDAR: u8 = 0;
pub const EVENTS: u8 = 1;
pub const CALL_TIMERS: u8 = 2;
pub const AFTER: u8 = 3;

/// A failed recharge blocks the next request for a day (edge rule 8).
pub const BACKOFF_US: i128 = 24 * 3600 * US_PER_S;

/// An instant and its phase: timers order by both.
pub type Due = (Instant, u8);

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub key: String,
    pub allowance_us: i128,
    pub month: String,
    pub settled_at: Instant,
    pub used_us: Instant,
    /// Live calls draining it, in call-start order.
    pub calls: Vec<String>,
    pub sent_80: bool,
    pub sent_100: bool,
}

impl Pool {
    pub fn remaining_us(&self) -> Instant {
        let left = &Instant::Us(self.allowance_us) - &self.used_us;
        if left.gt_us(0) {
            left
        } else {
            Instant::Us(0)
        }
    }

    /// Charge the pool for the talk time of its calls up to `at`.
    fn settle(&mut self, at: &Instant) {
        if *at > self.settled_at {
            if !self.calls.is_empty() {
                let n = self.calls.len() as i128;
                self.used_us = &self.used_us + &(at - &self.settled_at).mul_i128(n);
            }
            self.settled_at = at.clone();
        }
    }

    fn next_due(&self) -> Option<Instant> {
        let n = self.calls.len() as i128;
        if n == 0 || self.allowance_us <= 0 {
            return None;
        }
        let mark_80 = self.allowance_us * 4 / 5;
        if !self.sent_80 && self.used_us.lt_us(mark_80) {
            // the 80 % mark comes first: it lies below the allowance (allowance > 0), so
            // its talk time left is less than the pool's
            return Some(&self.settled_at + &(&Instant::Us(mark_80) - &self.used_us).div_exact(n));
        }
        Some(&self.settled_at + &self.remaining_us().div_exact(n))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Lot {
    pub lot_id: String,
    pub seq: u64,
    pub bought_at: Instant,
    pub expires_at: Instant,
    pub remaining_micros: i128,
    pub expired: bool,
    pub forfeits: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LiveCall {
    pub call_id: String,
    pub seq: u64,
    pub user_id: Option<String>,
    pub kind: Kind,
    pub switch_id_json: Vec<u8>,
    /// The deck row pricing it (an index into `Deck::rows`); None for inbound calls.
    pub row: Option<usize>,
    pub start: Instant,
    /// The pool it started on.
    pub pool_key: Option<String>,
    pub on_pool: bool,
    /// When it left the pool for credits.
    pub pool_end: Option<Instant>,
    pub credit_start: Option<Instant>,
    pub with_fee: bool,
    pub prepaid_s: i64,
    pub hold_micros: i128,
}

impl LiveCall {
    fn boundary(&self) -> Option<Instant> {
        self.credit_start
            .as_ref()
            .map(|c| c + i128::from(self.prepaid_s) * US_PER_S)
    }
}

/// What `apply` did with one input.
#[derive(Debug, Default)]
pub struct Applied {
    pub outputs: Vec<Output>,
    /// The dead-letter reason when the input was refused (then nothing is remembered).
    pub reject: Option<&'static str>,
    /// The key to remember `outputs` under (edge rule 7), when the input was decided anew
    /// (None for a duplicate, whose `outputs` are the remembered ones, re-emitted):
    /// the caller stores them (`seen`, or its own table) after it has written them out, so
    /// they are moved there rather than copied.
    pub remember: Option<String>,
}

/// All state of one tenant and the rules that change it.
#[derive(Clone, Debug, Default)]
pub struct Tenant {
    pub tenant_id: String,
    pub clock: Option<Instant>,
    pub pools: Vec<Pool>,
    pub month_due: Option<i128>,
    pub lots: Vec<Lot>,
    pub lot_seq: u64,
    pub balance_micros: i128,
    pub holds_micros: i128,
    pub licences: FxHashSet<String>,
    pub auto_enabled: bool,
    pub trigger_micros: Option<i128>,
    pub recharge_micros: Option<i128>,
    pub outstanding: Option<(String, i128)>,
    pub backoff_until: Option<Instant>,
    pub requests_n: u64,
    pub plain_notices_n: u64,
    pub call_seq: u64,
    /// Live calls in call-start order.
    pub live: Vec<LiveCall>,
    /// Input key -> what it emitted, for re-emission (edge rule 7; no time limit).
    pub seen: FxHashMap<String, Vec<Output>>,
}

/// The tenant with the deck it rates against, for the duration of one decision.
struct Ctx<'t, 'd> {
    t: &'t mut Tenant,
    deck: &'d Deck,
    out: &'t mut Vec<Output>,
}

impl Tenant {
    pub fn new(tenant_id: &str) -> Tenant {
        Tenant {
            tenant_id: tenant_id.to_owned(),
            ..Tenant::default()
        }
    }

    fn pool_index(&self, key: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.key == key)
    }

    fn live_index(&self, call_id: &str) -> Option<usize> {
        self.live.iter().position(|c| c.call_id == call_id)
    }

    // ------------------------------------------------------------- timers

    /// The earliest (instant, phase) at which `fire` has work, or None. On a tie the first
    /// candidate wins (calendar, pools, credits).
    pub fn next_due(&self, deck: &Deck) -> Option<Due> {
        let mut at = self.calendar_due();
        let mut phase = CALENDAR;
        if self.live.is_empty() {
            return at.map(|a| (a, CALENDAR));
        }
        let candidates = self
            .pools
            .iter()
            .filter(|p| !p.calls.is_empty())
            .filter_map(Pool::next_due);
        for due in candidates.chain(self.credit_due(deck)) {
            if at.as_ref().is_none_or(|a| due < *a) {
                at = Some(due);
                phase = CALL_TIMERS;
            }
        }
        at.map(|a| (a, phase))
    }

    /// The earliest of the month refill (if there are pools), the back-off end, a lot expiry.
    fn calendar_due(&self) -> Option<Instant> {
        let mut at = if self.pools.is_empty() {
            None
        } else {
            self.month_due.map(Instant::Us)
        };
        if let Some(b) = &self.backoff_until {
            if at.as_ref().is_none_or(|a| b < a) {
                at = Some(b.clone());
            }
        }
        if let Some(lot) = self.lots.iter().find(|l| !l.expired) {
            if at.as_ref().is_none_or(|a| lot.expires_at < *a) {
                at = Some(lot.expires_at.clone());
            }
        }
        at
    }

    /// When credit calls next need a look: the first increment boundary that could fail.
    ///
    /// Boundaries that must succeed are not fired one by one. Over the next D seconds a call's
    /// hold grows by at most rate * (D + next) / 60 plus one rounding step, so while the sum of
    /// those bounds fits in what is free (balance - holds), no boundary can fail: the core
    /// sleeps until that horizon and then catches the calls up (`catch_up`). Near the end of
    /// the money the horizon shrinks below one increment and boundaries fire exactly, with
    /// their checks, as edge rule 1 orders them. (On arithmetic overflow the horizon is
    /// dropped: firing every boundary is always exact, only slower.)
    fn credit_due(&self, deck: &Deck) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let (mut rate_sum, mut slack): (i128, Option<i128>) = (0, Some(0));
        for call in &self.live {
            let (Some(b), Some(row)) = (call.boundary(), call.row.and_then(|i| deck.rows.get(i)))
            else {
                continue;
            };
            if earliest.as_ref().is_none_or(|e| b < *e) {
                earliest = Some(b);
            }
            let rate = row.rate_micros_per_min;
            rate_sum = rate_sum.saturating_add(rate);
            slack = slack
                .and_then(|s| {
                    rate.checked_mul(i128::from(row.next_increment_s))
                        .and_then(|x| s.checked_add(x))
                })
                .and_then(|s| s.checked_add(60 * MICROS_PER_CENTI_CENT));
        }
        let earliest = earliest?;
        if rate_sum == 0 {
            return None; // nothing can grow: a free call's hold never changes
        }
        let (Some(slack), Some(clock)) = (slack, &self.clock) else {
            return Some(earliest);
        };
        let free_x60 = (self.balance_micros - self.holds_micros)
            .checked_mul(60)
            .and_then(|f| f.checked_sub(slack));
        let horizon_us = match free_x60 {
            Some(f) if f > 0 => f
                .checked_mul(US_PER_S)
                .map_or(0, |x| x.div_euclid(rate_sum)),
            _ => 0,
        };
        if horizon_us <= 0 {
            return Some(earliest);
        }
        let safe_until = clock + horizon_us;
        Some(if earliest > safe_until {
            earliest
        } else {
            safe_until
        })
    }

    /// Fire, in order, every timer due before (until, phase).
    pub fn advance(&mut self, deck: &Deck, until: &Instant, phase: u8, out: &mut Vec<Output>) {
        while let Some(due) = self.next_due(deck) {
            if (&due.0, due.1) >= (until, phase) {
                break;
            }
            self.fire(deck, &due.0, due.1, out);
        }
    }

    /// Run the timers of one phase of one instant.
    pub fn fire(&mut self, deck: &Deck, at: &Instant, phase: u8, out: &mut Vec<Output>) {
        if self.clock.as_ref().is_none_or(|c| at > c) {
            self.clock = Some(at.clone());
        }
        let mut cx = Ctx { t: self, deck, out };
        cx.catch_up(at);
        if phase == CALENDAR {
            cx.fire_calendar(at);
        } else {
            cx.fire_calls(at);
        }
    }

    /// Prepay every increment boundary before `until` that is sure to succeed (as a timer
    /// or an input at `until` would first do); for inspecting a tenant at an instant.
    pub fn catch_up(&mut self, deck: &Deck, until: &Instant) {
        let mut out = Vec::new();
        Ctx {
            t: self,
            deck,
            out: &mut out,
        }
        .catch_up(until);
    }

    /// Apply one valid input at the tenant's clock (a late event applies at the clock).
    pub fn apply(&mut self, deck: &Deck, ev: &Event) -> Applied {
        let at = match &self.clock {
            Some(c) if ev.ts <= *c => c.clone(),
            _ => {
                self.clock = Some(ev.ts.clone());
                ev.ts.clone()
            }
        };
        let mut out = Vec::new();
        Ctx {
            t: self,
            deck,
            out: &mut out,
        }
        .catch_up(&at);
        let seen_key = ev.seen_key();
        if let Some(previous) = self.seen.get(&seen_key) {
            return Applied {
                outputs: previous.clone(),
                reject: None,
                remember: None,
            };
        }
        let reject = Ctx {
            t: self,
            deck,
            out: &mut out,
        }
        .dispatch(ev, &at);
        Applied {
            outputs: out,
            reject,
            remember: reject.is_none().then_some(seen_key),
        }
    }
}

impl Ctx<'_, '_> {
    fn row(&self, call: &LiveCall) -> Option<&Rate> {
        call.row.and_then(|i| self.deck.rows.get(i))
    }

    fn emit(&mut self, topic: Topic, payload: Vec<u8>) {
        self.out.push((topic, payload));
    }

    /// Prepay every boundary before `until`; `credit_due` proved they all succeed.
    fn catch_up(&mut self, until: &Instant) {
        let deck = self.deck;
        let mut holds = self.t.holds_micros;
        for call in self.t.live.iter_mut() {
            let (Some(b), Some(row)) = (call.boundary(), call.row.and_then(|i| deck.rows.get(i)))
            else {
                continue;
            };
            if b < *until {
                let step_us = i128::from(row.next_increment_s) * US_PER_S;
                let k = (until - &b).ceil_us().div_euclid(step_us)
                    + i128::from((until - &b).ceil_us().rem_euclid(step_us) != 0);
                let k = i64::try_from(k).unwrap_or(i64::MAX);
                call.prepaid_s = call
                    .prepaid_s
                    .saturating_add(k.saturating_mul(row.next_increment_s));
                let hold = price_micros(row, call.prepaid_s, call.with_fee);
                holds += hold - call.hold_micros;
                call.hold_micros = hold;
            }
        }
        self.t.holds_micros = holds;
    }

    fn fire_calendar(&mut self, at: &Instant) {
        if self.t.month_due.is_some_and(|m| at.eq_us(m)) && !self.t.pools.is_empty() {
            let month = month_label(at);
            for i in 0..self.t.pools.len() {
                self.t.pools[i].settle(at);
                self.pool_notices(i, at);
                let pool = &mut self.t.pools[i];
                pool.used_us = Instant::Us(0);
                pool.month = month.clone();
                pool.sent_80 = false;
                pool.sent_100 = false;
            }
            self.t.month_due = Some(next_month_start(at));
        }
        let before = self.t.balance_micros;
        for i in 0..self.t.lots.len() {
            if self.t.lots[i].expired {
                continue;
            }
            if self.t.lots[i].expires_at != *at {
                break;
            }
            self.t.lots[i].expired = true;
            self.forfeit_unheld(at);
        }
        self.drop_empty_lots();
        if self.t.backoff_until.as_ref() == Some(at) {
            self.t.backoff_until = None;
        }
        self.after_balance(before, at);
    }

    fn fire_calls(&mut self, at: &Instant) {
        for i in 0..self.t.pools.len() {
            if !self.t.pools[i].calls.is_empty() {
                self.t.pools[i].settle(at);
                self.pool_notices(i, at);
            }
        }
        let ids: Vec<String> = self.t.live.iter().map(|c| c.call_id.clone()).collect();
        for id in ids {
            let Some(ci) = self.t.live_index(&id) else {
                continue;
            };
            let call = &self.t.live[ci];
            if call.on_pool {
                let empty = call
                    .pool_key
                    .as_deref()
                    .and_then(|k| self.t.pool_index(k))
                    .is_none_or(|p| !self.t.pools[p].remaining_us().gt_us(0));
                if empty {
                    self.move_to_credits(ci, at);
                }
            } else if call.boundary().as_ref() == Some(at) {
                self.next_increment(ci, at);
            }
        }
    }

    // ------------------------------------------------------------- pools

    fn pool_notices(&mut self, pi: usize, at: &Instant) {
        let pool = &mut self.t.pools[pi];
        if pool.allowance_us <= 0 {
            return;
        }
        let mut kinds = Vec::new();
        if !pool.sent_80 && pool.used_us.mul_i128(5) >= Instant::Us(pool.allowance_us * 4) {
            pool.sent_80 = true;
            kinds.push("pool_80");
        }
        if !pool.sent_100 && !pool.remaining_us().gt_us(0) {
            pool.sent_100 = true;
            kinds.push("pool_100");
        }
        for kind in kinds {
            let pool = &self.t.pools[pi];
            let tid = &self.t.tenant_id;
            let nid = format!("{tid}:{kind}:{}:{}", pool.key, pool.month);
            let mut o = notification(&nid, tid, kind, at);
            o.str("pool", &pool.key)
                .str("month", &pool.month)
                .int("allowance_minutes", pool.allowance_us / (60 * US_PER_S))
                .seconds("remaining_seconds", &pool.remaining_us());
            let record = o.finish();
            self.emit(Topic::Notifications, record);
        }
    }

    fn pool_for(&self, kind: Kind, row: &Rate, usage_location: Option<&str>) -> Option<usize> {
        if row.number_type == "premium" {
            return None;
        }
        match (kind, usage_location) {
            (Kind::UserOutbound, Some(loc)) => {
                let plan = if row.country == loc {
                    "domestic"
                } else {
                    "international"
                };
                self.t.pools.iter().position(|p| {
                    p.key.len() == plan.len() + 1 + loc.len()
                        && p.key.starts_with(plan)
                        && p.key.as_bytes().get(plan.len()) == Some(&b':')
                        && p.key.ends_with(loc)
                })
            }
            (Kind::ConferenceDialout, _) if row.zone == "A" => self.t.pool_index("conferencing"),
            _ => None,
        }
    }

    fn set_pool(&mut self, at: &Instant, key: &str, minutes: i128) {
        let allowance = minutes * 60 * US_PER_S;
        let pi = match self.t.pool_index(key) {
            None => {
                self.t.pools.push(Pool {
                    key: key.to_owned(),
                    allowance_us: allowance,
                    month: month_label(at),
                    settled_at: at.clone(),
                    used_us: Instant::Us(0),
                    calls: Vec::new(),
                    sent_80: false,
                    sent_100: false,
                });
                if self.t.month_due.is_none() {
                    self.t.month_due = Some(next_month_start(at));
                }
                self.t.pools.len() - 1
            }
            Some(pi) => {
                self.t.pools[pi].settle(at);
                self.t.pools[pi].allowance_us = allowance;
                pi
            }
        };
        self.pool_notices(pi, at);
        if !self.t.pools[pi].remaining_us().gt_us(0) {
            for call_id in self.t.pools[pi].calls.clone() {
                if let Some(ci) = self.t.live_index(&call_id) {
                    self.move_to_credits(ci, at);
                }
            }
        }
    }

    // ------------------------------------------------------------- credits

    /// Balance minus what the *other* live calls hold (edge rule 2).
    fn available_for(&self, own_hold_micros: i128) -> i128 {
        self.t.balance_micros - (self.t.holds_micros - own_hold_micros)
    }

    fn set_hold(&mut self, ci: usize, hold: i128) {
        let call = &mut self.t.live[ci];
        self.t.holds_micros += hold - call.hold_micros;
        call.hold_micros = hold;
    }

    fn licensed(&self, kind: Kind, user_id: Option<&str>) -> bool {
        match kind {
            Kind::TollfreeInbound => true,
            Kind::UserOutbound | Kind::ConferenceDialout => {
                user_id.is_some_and(|u| self.t.licences.contains(u))
            }
            Kind::Inbound => false,
        }
    }

    /// The pool ran dry: credits from `at` (increments restart, no fee) or a disconnect.
    fn move_to_credits(&mut self, ci: usize, at: &Instant) {
        let call = &self.t.live[ci];
        let call_id = call.call_id.clone();
        if let Some(pi) = call.pool_key.as_deref().and_then(|k| self.t.pool_index(k)) {
            self.t.pools[pi].calls.retain(|c| *c != call_id);
        }
        let Some(row) = self.row(&self.t.live[ci]).cloned() else {
            return;
        };
        let call = &mut self.t.live[ci];
        call.on_pool = false;
        call.pool_end = Some(at.clone());
        let hold = price_micros(&row, row.first_increment_s, false);
        let call = &self.t.live[ci];
        if self.licensed(call.kind, call.user_id.as_deref())
            && hold <= self.available_for(call.hold_micros)
        {
            let call = &mut self.t.live[ci];
            call.credit_start = Some(at.clone());
            call.with_fee = false;
            call.prepaid_s = row.first_increment_s;
            self.set_hold(ci, hold);
        } else {
            self.finish(ci, at, Some("funds_exhausted"));
        }
    }

    fn next_increment(&mut self, ci: usize, at: &Instant) {
        let call = &self.t.live[ci];
        let Some(row) = self.row(call) else { return };
        let prepaid = call.prepaid_s.saturating_add(row.next_increment_s);
        let hold = price_micros(row, prepaid, call.with_fee);
        if hold <= self.available_for(call.hold_micros) {
            self.t.live[ci].prepaid_s = prepaid;
            self.set_hold(ci, hold);
        } else {
            self.finish(ci, at, Some("funds_exhausted"));
        }
    }

    // ---------------------------------------------------------------- lots

    fn add_lot(&mut self, lot_id: &str, amount_micros: i128, at: &Instant) {
        self.t.lot_seq += 1;
        self.t.lots.push(Lot {
            lot_id: lot_id.to_owned(),
            seq: self.t.lot_seq,
            bought_at: at.clone(),
            expires_at: add_twelve_months(at),
            remaining_micros: amount_micros,
            expired: false,
            forfeits: 0,
        });
        self.t
            .lots
            .sort_by(|a, b| (&a.expires_at, a.seq).cmp(&(&b.expires_at, b.seq)));
        self.t.balance_micros += amount_micros;
    }

    /// Forfeit what of the expired lots no live hold needs (edge rule 3).
    fn forfeit_unheld(&mut self, at: &Instant) {
        let mut need = self.t.holds_micros;
        for li in 0..self.t.lots.len() {
            let lot = &mut self.t.lots[li];
            let covered = lot.remaining_micros.min(need.max(0));
            need -= covered;
            if !lot.expired {
                break;
            }
            let excess = lot.remaining_micros - covered;
            if excess > 0 {
                lot.remaining_micros = covered;
                lot.forfeits += 1;
                self.t.balance_micros -= excess;
                let lot = &self.t.lots[li];
                let suffix = if lot.forfeits == 1 {
                    String::new()
                } else {
                    format!(":{}", lot.forfeits)
                };
                let tid = &self.t.tenant_id;
                let nid = format!("{tid}:funds_expired:{}{suffix}", lot.lot_id);
                let mut o = notification(&nid, tid, "funds_expired", at);
                o.str("lot_id", &lot.lot_id)
                    .money("amount", excess)
                    .opt_str("currency", self.deck.currency.as_deref());
                let record = o.finish();
                self.emit(Topic::Notifications, record);
            }
        }
    }

    fn drop_empty_lots(&mut self) {
        self.t.lots.retain(|l| l.remaining_micros > 0);
    }

    /// Take a finished call's charge from the lots that expire first.
    fn deduct(&mut self, amount_micros: i128, at: &Instant) {
        self.t.balance_micros -= amount_micros;
        let mut amount = amount_micros;
        for lot in self.t.lots.iter_mut() {
            if amount == 0 {
                break;
            }
            let take = lot.remaining_micros.min(amount);
            lot.remaining_micros -= take;
            amount -= take;
        }
        if self.t.lots.first().is_some_and(|l| l.expired) {
            self.forfeit_unheld(at);
        }
        self.drop_empty_lots();
    }

    // ---------------------------------------------------------- auto-recharge

    fn plain_notice(
        &mut self,
        kind: &str,
        at: &Instant,
        fill: impl FnOnce(&mut crate::records::Obj),
    ) {
        self.t.plain_notices_n += 1;
        let tid = &self.t.tenant_id;
        let nid = format!("{tid}:{kind}:{}", self.t.plain_notices_n);
        let mut o = notification(&nid, tid, kind, at);
        fill(&mut o);
        let record = o.finish();
        self.emit(Topic::Notifications, record);
    }

    /// Edge rule 9: low_balance, balance_zero, then the payments request.
    fn after_balance(&mut self, before: i128, at: &Instant) {
        let after = self.t.balance_micros;
        if let Some(trigger) = self.t.trigger_micros {
            if !self.t.auto_enabled && before >= trigger && trigger > after {
                self.plain_notice("low_balance", at, |o| {
                    o.money("balance", after).money("trigger_amount", trigger);
                });
            }
        }
        if before > 0 && after == 0 {
            self.plain_notice("balance_zero", at, |o| {
                o.money("balance", after);
            });
        }
        self.maybe_recharge(at);
    }

    /// Level-triggered auto-recharge (edge rules 8 and 21).
    fn maybe_recharge(&mut self, at: &Instant) {
        let t = &mut *self.t;
        let (Some(trigger), Some(recharge)) = (t.trigger_micros, t.recharge_micros) else {
            return;
        };
        if t.auto_enabled
            && t.balance_micros < trigger
            && t.outstanding.is_none()
            && t.backoff_until.is_none()
        {
            t.requests_n += 1;
            let request_id = format!("{}:recharge:{}", t.tenant_id, t.requests_n);
            let record = payment_json(
                &request_id,
                &t.tenant_id,
                recharge,
                self.deck.currency.as_deref(),
                at,
            );
            t.outstanding = Some((request_id, recharge));
            self.emit(Topic::Payments, record);
        }
    }

    // ---------------------------------------------------------------- calls

    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &mut self,
        ev: &Event,
        kind: Kind,
        user_id: Option<&str>,
        switch_id_json: &[u8],
        reason: &'static str,
        row: Option<&Rate>,
    ) {
        let tid = &self.t.tenant_id;
        let disconnect = disconnect_json(tid, &ev.key, switch_id_json, reason, &ev.ts);
        let status = match reason {
            "no_rate" => "unrated",
            "bad_number" => "invalid",
            _ => "rated",
        };
        let currency = row
            .map(|r| r.currency.as_str())
            .or(self.deck.currency.as_deref());
        let charge = Charge {
            tenant_id: tid,
            call_id: &ev.key,
            user_id,
            kind: kind.as_str(),
            status,
            reason: Some(reason),
            row,
            start: &ev.ts,
            end: &ev.ts,
            billed_s: 0,
            charge_micros: 0,
            currency,
            pool: None,
            pool_us: &Instant::Us(0),
            disconnected: Some(reason),
        }
        .to_json();
        self.emit(Topic::Disconnects, disconnect);
        self.emit(Topic::Charges, charge);
    }

    fn start(&mut self, ev: &Event, at: &Instant) {
        let Body::CallStart {
            kind,
            user_id,
            from,
            to,
            usage_location,
            switch_id_json,
        } = &ev.body
        else {
            return;
        };
        let kind = *kind;
        self.t.call_seq += 1;
        let mut call = LiveCall {
            call_id: ev.key.clone(),
            seq: self.t.call_seq,
            user_id: user_id.clone(),
            kind,
            switch_id_json: switch_id_json.clone(),
            row: None,
            start: at.clone(),
            pool_key: None,
            on_pool: false,
            pool_end: None,
            credit_start: None,
            with_fee: false,
            prepaid_s: 0,
            hold_micros: 0,
        };
        if kind == Kind::Inbound {
            self.t.live.push(call);
            return;
        }
        let (Some(from), Some(to)) = (
            from.as_deref().filter(|n| is_e164(n)),
            to.as_deref().filter(|n| is_e164(n)),
        ) else {
            return self.refuse(
                ev,
                kind,
                user_id.as_deref(),
                switch_id_json,
                "bad_number",
                None,
            );
        };
        let deck = self.deck;
        let Some(row) = rate_for(deck, kind, from, to, at) else {
            return self.refuse(
                ev,
                kind,
                user_id.as_deref(),
                switch_id_json,
                "no_rate",
                None,
            );
        };
        call.row = Some(row.index);
        if let Some(pi) = self.pool_for(kind, row, usage_location.as_deref()) {
            self.t.pools[pi].settle(at);
            self.pool_notices(pi, at);
            let pool = &mut self.t.pools[pi];
            if pool.remaining_us().gt_us(0) {
                call.pool_key = Some(pool.key.clone());
                call.on_pool = true;
                pool.calls.push(call.call_id.clone());
                self.t.live.push(call);
                return;
            }
        }
        if !self.licensed(kind, user_id.as_deref()) {
            return self.refuse(
                ev,
                kind,
                user_id.as_deref(),
                switch_id_json,
                "not_licensed",
                Some(row),
            );
        }
        let hold = price_micros(row, row.first_increment_s, true);
        if hold > self.available_for(0) {
            return self.refuse(
                ev,
                kind,
                user_id.as_deref(),
                switch_id_json,
                "no_funds",
                Some(row),
            );
        }
        call.credit_start = Some(at.clone());
        call.with_fee = true;
        call.prepaid_s = row.first_increment_s;
        self.t.live.push(call);
        let ci = self.t.live.len() - 1;
        self.set_hold(ci, hold);
    }

    /// Close a call at `end` (its call_end ts, or the disconnect instant) and charge its
    /// credit part.
    fn finish(&mut self, ci: usize, end: &Instant, disconnected: Option<&'static str>) {
        let mut call = self.t.live.remove(ci);
        let mut pool_us = Instant::Us(0);
        if let Some(pi) = call.pool_key.as_deref().and_then(|k| self.t.pool_index(k)) {
            if call.on_pool {
                let pool = &mut self.t.pools[pi];
                let settle_at = if *end > pool.settled_at {
                    end.clone()
                } else {
                    pool.settled_at.clone()
                };
                pool.settle(&settle_at);
                pool.calls.retain(|c| *c != call.call_id);
                call.pool_end = Some(end.clone());
                self.pool_notices(pi, end);
            }
            if let Some(pool_end) = &call.pool_end {
                let until = if end < pool_end { end } else { pool_end };
                let talked = until - &call.start;
                if talked.gt_us(0) {
                    pool_us = talked;
                }
            }
        }
        let deck = self.deck;
        let row = call.row.and_then(|i| deck.rows.get(i));
        let (mut billed, mut charge) = (0, 0);
        if let (Some(credit_start), Some(row)) = (&call.credit_start, row) {
            billed = billed_seconds(
                &(end - credit_start),
                row.first_increment_s,
                row.next_increment_s,
            );
            charge = price_micros(row, billed, call.with_fee);
            self.t.holds_micros -= call.hold_micros;
        }
        let tid = &self.t.tenant_id;
        if let Some(reason) = disconnected {
            let record = disconnect_json(tid, &call.call_id, &call.switch_id_json, reason, end);
            self.emit(Topic::Disconnects, record);
        }
        let tid = &self.t.tenant_id;
        let record = Charge {
            tenant_id: tid,
            call_id: &call.call_id,
            user_id: call.user_id.as_deref(),
            kind: call.kind.as_str(),
            status: if call.kind == Kind::Inbound {
                "free"
            } else {
                "rated"
            },
            reason: None,
            row,
            start: &call.start,
            end,
            billed_s: billed,
            charge_micros: charge,
            currency: row
                .map(|r| r.currency.as_str())
                .or(deck.currency.as_deref()),
            pool: call.pool_key.as_deref(),
            pool_us: &pool_us,
            disconnected,
        }
        .to_json();
        self.emit(Topic::Charges, record);
        let before = self.t.balance_micros;
        if charge != 0 {
            self.deduct(charge, end);
        }
        self.after_balance(before, end);
    }

    // --------------------------------------------------------------- events

    fn dispatch(&mut self, ev: &Event, at: &Instant) -> Option<&'static str> {
        match &ev.body {
            Body::CallStart { .. } => self.start(ev, at),
            Body::CallEnd => match self.t.live_index(&ev.key) {
                Some(ci) => self.finish(ci, &ev.ts, None), // a call_end caps the call at its own ts
                None => {
                    if !self
                        .t
                        .seen
                        .contains_key(&format!("call_start\u{1f}{}", ev.key))
                    {
                        return Some("unknown_call");
                    }
                }
            },
            Body::AddFunds { amount_micros } => {
                self.add_lot(&ev.key, *amount_micros, at);
                self.t.backoff_until = None;
                self.maybe_recharge(at);
            }
            Body::SetAutoRecharge {
                enabled,
                trigger_micros,
                recharge_micros,
            } => {
                self.t.auto_enabled = *enabled;
                if trigger_micros.is_some() {
                    self.t.trigger_micros = *trigger_micros;
                }
                if recharge_micros.is_some() {
                    self.t.recharge_micros = *recharge_micros;
                }
                self.t.backoff_until = None;
                self.maybe_recharge(at);
            }
            Body::PaymentResult {
                request_id,
                succeeded,
                reason_json,
            } => {
                return self.payment_result(request_id, *succeeded, reason_json, at);
            }
            Body::AssignLicence { user_id } => {
                self.t.licences.insert(user_id.clone());
            }
            Body::RemoveLicence { user_id } => {
                self.t.licences.remove(user_id);
            }
            Body::SetPool { pool, minutes } => self.set_pool(at, pool, *minutes),
        }
        None
    }

    fn payment_result(
        &mut self,
        request_id: &str,
        succeeded: bool,
        reason_json: &[u8],
        at: &Instant,
    ) -> Option<&'static str> {
        match &self.t.outstanding {
            Some((rid, _)) if rid == request_id => {}
            _ => return Some("unknown_request"),
        }
        let (request_id, amount) = self.t.outstanding.take()?;
        let kind = if succeeded {
            "recharge_succeeded"
        } else {
            "recharge_failed"
        };
        let tid = &self.t.tenant_id;
        let mut o = notification(&format!("{tid}:{kind}:{request_id}"), tid, kind, at);
        o.str("request_id", &request_id).money("amount", amount);
        if !succeeded {
            o.raw("reason", reason_json);
        }
        let record = o.finish();
        self.emit(Topic::Notifications, record);
        if succeeded {
            self.add_lot(&request_id, amount, at);
            self.maybe_recharge(at);
        } else {
            self.t.backoff_until = Some(at + BACKOFF_US);
        }
        None
    }
}
