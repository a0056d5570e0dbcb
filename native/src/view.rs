//! The account view: what a tenant admin reads about their account, computed from the
//! tenant's state bytes (the changelog format of `state.rs`), or from the tenant in memory.
//!
//! The worker publishes it on the compacted `account-views` topic whenever a transaction
//! changed a tenant, and the account API serves it as it is. It is a pure function of the
//! state bytes (and the
//! deck's currency, which the state does not carry): money as 4-place strings written by
//! `money.rs`, seconds as exact JSON numbers and instants as `YYYY-MM-DDTHH:MM:SS.mmmZ`, both
//! written by `clock.rs`, like every record. Pools are shown as of the tenant's clock: the
//! talk time of their live calls since the pool was last settled counts as used.
//!
//! The state is read here rather than through `state::load_tenant` because that needs the
//! deck (a live call names its deck row), and the view needs none of the deck's rows. Both
//! readers fill the same [`Facts`], which one function renders: the worker's path from the
//! tenant in memory skips parsing the bytes it has just written.

use crate::clock::Instant;
use crate::fields::{self, array, boolean, instant, int, opt_instant, opt_int, opt_string, string};
use crate::json::{self, Object, Value};
use crate::records::Obj;
use crate::tenant::Tenant;

/// Why state bytes give no view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewError(pub String);

impl std::fmt::Display for ViewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type R<T> = Result<T, ViewError>;

impl From<fields::Bad> for ViewError {
    fn from(bad: fields::Bad) -> ViewError {
        ViewError(format!("account view: bad {} in the tenant state", bad.0))
    }
}

fn member<'v, 'a>(doc: &'v Object<'a>, key: &str) -> &'v Value<'a> {
    doc.get(key).unwrap_or(&Value::Null)
}

fn json_bool(b: bool) -> &'static [u8] {
    if b {
        b"true"
    } else {
        b"false"
    }
}

fn opt_instant_member(o: &mut Obj, key: &str, at: Option<&Instant>) {
    match at {
        Some(t) => o.instant(key, t),
        None => o.raw(key, b"null"),
    };
}

fn opt_money_member(o: &mut Obj, key: &str, micros: Option<i128>) {
    match micros {
        Some(m) => o.money(key, m),
        None => o.raw(key, b"null"),
    };
}

/// What auto-recharge is doing: a request outstanding, a back-off after a failed one
/// running, waiting for the balance to fall below the trigger (`idle`), or turned off.
fn recharge_state(
    enabled: bool,
    outstanding: bool,
    backoff_until: Option<&Instant>,
    clock: Option<&Instant>,
) -> &'static str {
    if outstanding {
        "outstanding"
    } else if backoff_until.is_some_and(|b| clock.is_none_or(|c| b > c)) {
        "backing_off"
    } else if enabled {
        "idle"
    } else {
        "off"
    }
}

/// What a view shows of a tenant, read from its state bytes ([`Facts::of_state`]) or taken
/// from the tenant in memory ([`Facts::of_tenant`], the worker's path: no bytes to parse);
/// [`render`] writes the one view both give.
struct Facts<'a> {
    tenant_id: &'a str,
    clock: Option<Instant>,
    balance: i128,
    held: i128,
    lots: Vec<LotFacts<'a>>,
    pools: Vec<PoolFacts<'a>>,
    auto_enabled: bool,
    trigger: Option<i128>,
    recharge: Option<i128>,
    outstanding: Option<(&'a str, i128)>,
    backoff_until: Option<Instant>,
    licences: Vec<&'a str>,
    live: Vec<LiveFacts<'a>>,
}

struct LotFacts<'a> {
    lot_id: &'a str,
    bought_at: Instant,
    expires_at: Instant,
    remaining: i128,
    expired: bool,
}

struct PoolFacts<'a> {
    key: &'a str,
    month: &'a str,
    allowance_us: i128,
    settled_at: Instant,
    used: Instant,
    calls: usize,
}

struct LiveFacts<'a> {
    call_id: &'a str,
    user_id: Option<&'a str>,
    kind: &'a str,
    start: Instant,
    /// The pool the call talks on, when it does (`on_pool`).
    pool: Option<&'a str>,
    held: i128,
}

impl<'a> Facts<'a> {
    fn of_state(doc: &'a Object<'a>) -> R<Facts<'a>> {
        if !matches!(member(doc, "v"), Value::Int(v) if *v == crate::state::FORMAT_VERSION) {
            return Err(ViewError(
                "account view: unknown tenant state version".into(),
            ));
        }
        let clock = opt_instant(member(doc, "clock"), "clock")?;
        let tenant_id = string(member(doc, "tenant_id"), "tenant_id")?;
        let balance = int(member(doc, "balance"), "balance")?;
        let held = int(member(doc, "holds"), "holds")?;
        let mut lots = Vec::new();
        for l in array(member(doc, "lots"), "lots", None)? {
            let f = array(l, "lot", Some(7))?;
            lots.push(LotFacts {
                lot_id: string(&f[0], "lot id")?,
                bought_at: instant(&f[2], "lot bought_at")?,
                expires_at: instant(&f[3], "lot expires_at")?,
                remaining: int(&f[4], "lot remaining")?,
                expired: boolean(&f[5], "lot expired")?,
            });
        }
        let mut pools = Vec::new();
        for p in array(member(doc, "pools"), "pools", None)? {
            let f = array(p, "pool", Some(8))?;
            pools.push(PoolFacts {
                key: string(&f[0], "pool key")?,
                allowance_us: int(&f[1], "pool allowance")?,
                month: string(&f[2], "pool month")?,
                settled_at: instant(&f[3], "pool settled_at")?,
                used: instant(&f[4], "pool used")?,
                calls: array(&f[5], "pool calls", None)?.len(),
            });
        }
        let auto = array(member(doc, "auto"), "auto", Some(3))?;
        let outstanding = match member(doc, "outstanding") {
            Value::Null => None,
            v => {
                let f = array(v, "outstanding", Some(2))?;
                Some((string(&f[0], "request id")?, int(&f[1], "request amount")?))
            }
        };
        let licences = array(member(doc, "licences"), "licences", None)?
            .iter()
            .map(|u| string(u, "licence"))
            .collect::<fields::Read<_>>()?;
        let mut live = Vec::new();
        for c in array(member(doc, "live"), "live", None)? {
            let f = array(c, "live call", Some(14))?;
            live.push(LiveFacts {
                call_id: string(&f[0], "call id")?,
                user_id: opt_string(&f[2], "user id")?,
                kind: string(&f[3], "kind")?,
                start: instant(&f[6], "start")?,
                pool: if boolean(&f[8], "on_pool")? {
                    opt_string(&f[7], "pool key")?
                } else {
                    None
                },
                held: int(&f[13], "hold")?,
            });
        }
        Ok(Facts {
            tenant_id,
            clock,
            balance,
            held,
            lots,
            pools,
            auto_enabled: boolean(&auto[0], "auto enabled")?,
            trigger: opt_int(&auto[1], "trigger")?,
            recharge: opt_int(&auto[2], "recharge")?,
            outstanding,
            backoff_until: opt_instant(member(doc, "backoff_until"), "backoff_until")?,
            licences,
            live,
        })
    }

    fn of_tenant(t: &'a Tenant) -> Facts<'a> {
        Facts {
            tenant_id: &t.tenant_id,
            clock: t.clock.clone(),
            balance: t.balance_micros,
            held: t.holds_micros,
            lots: t
                .lots
                .iter()
                .map(|l| LotFacts {
                    lot_id: &l.lot_id,
                    bought_at: l.bought_at.clone(),
                    expires_at: l.expires_at.clone(),
                    remaining: l.remaining_micros,
                    expired: l.expired,
                })
                .collect(),
            pools: t
                .pools
                .iter()
                .map(|p| PoolFacts {
                    key: &p.key,
                    month: &p.month,
                    allowance_us: p.allowance_us,
                    settled_at: p.settled_at.clone(),
                    used: p.used_us.clone(),
                    calls: p.calls.len(),
                })
                .collect(),
            auto_enabled: t.auto_enabled,
            trigger: t.trigger_micros,
            recharge: t.recharge_micros,
            outstanding: t.outstanding.as_ref().map(|(rid, a)| (rid.as_str(), *a)),
            backoff_until: t.backoff_until.clone(),
            licences: t.licences.iter().map(String::as_str).collect(),
            live: t
                .live
                .iter()
                .map(|c| LiveFacts {
                    call_id: &c.call_id,
                    user_id: c.user_id.as_deref(),
                    kind: c.kind.as_str(),
                    start: c.start.clone(),
                    pool: c.pool_key.as_deref().filter(|_| c.on_pool),
                    held: c.hold_micros,
                })
                .collect(),
        }
    }
}

/// The account view (JSON bytes) of one tenant's state bytes; `currency` is the deck's.
pub fn account_view(state: &[u8], currency: Option<&str>) -> R<Vec<u8>> {
    let doc = json::parse(state).map_err(|e| ViewError(format!("account view: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(fields::Bad("document".into()).into());
    };
    Ok(render(Facts::of_state(&doc)?, currency))
}

/// The account view of a tenant in memory: the same bytes as [`account_view`] of its state.
pub fn tenant_view(t: &Tenant, currency: Option<&str>) -> Vec<u8> {
    render(Facts::of_tenant(t), currency)
}

fn render(facts: Facts<'_>, currency: Option<&str>) -> Vec<u8> {
    let Facts {
        clock,
        mut licences,
        ..
    } = facts;
    let mut o = Obj::new();
    o.str("tenant_id", facts.tenant_id)
        .opt_str("currency", currency)
        .money("balance", facts.balance)
        .money("held", facts.held)
        .money("available", (facts.balance - facts.held).max(0));

    let mut lots = vec![b'['];
    for (i, l) in facts.lots.iter().enumerate() {
        if i > 0 {
            lots.push(b',');
        }
        let mut lot = Obj::after(lots);
        lot.str("lot_id", l.lot_id)
            .instant("purchased_at", &l.bought_at)
            .instant("expires_at", &l.expires_at)
            .money("remaining", l.remaining)
            .raw("expired", json_bool(l.expired));
        lots = lot.finish();
    }
    lots.push(b']');
    o.raw("lots", &lots);

    let mut pools = vec![b'['];
    for (i, p) in facts.pools.iter().enumerate() {
        let calls = p.calls as i128;
        let used = match clock.as_ref() {
            Some(c) if calls > 0 && *c > p.settled_at => {
                &p.used + &(c - &p.settled_at).mul_i128(calls)
            }
            _ => p.used.clone(),
        };
        let left = &Instant::Us(p.allowance_us) - &used;
        let remaining = if left.gt_us(0) { left } else { Instant::Us(0) };
        if i > 0 {
            pools.push(b',');
        }
        let mut pool = Obj::after(pools);
        pool.str("pool", p.key)
            .str("month", p.month)
            .seconds("allowance_seconds", &Instant::Us(p.allowance_us))
            .seconds("used_seconds", &used)
            .seconds("remaining_seconds", &remaining)
            .int("live_calls", calls);
        pools = pool.finish();
    }
    pools.push(b']');
    o.raw("pools", &pools);

    let state = recharge_state(
        facts.auto_enabled,
        facts.outstanding.is_some(),
        facts.backoff_until.as_ref(),
        clock.as_ref(),
    );
    let mut ar = Obj::new();
    ar.raw("enabled", json_bool(facts.auto_enabled));
    opt_money_member(&mut ar, "trigger_amount", facts.trigger);
    opt_money_member(&mut ar, "recharge_amount", facts.recharge);
    ar.str("state", state)
        .opt_str("request_id", facts.outstanding.map(|(rid, _)| rid));
    opt_money_member(&mut ar, "request_amount", facts.outstanding.map(|(_, a)| a));
    opt_instant_member(
        &mut ar,
        "backoff_until",
        facts
            .backoff_until
            .as_ref()
            .filter(|_| state == "backing_off"),
    );
    o.raw("auto_recharge", &ar.finish());

    licences.sort_unstable();
    let mut list = vec![b'['];
    for (i, u) in licences.iter().enumerate() {
        if i > 0 {
            list.push(b',');
        }
        json::write_str(&mut list, u);
    }
    list.push(b']');
    o.raw("licensed_users", &list);

    let mut live = vec![b'['];
    for (i, c) in facts.live.iter().enumerate() {
        if i > 0 {
            live.push(b',');
        }
        let mut call = Obj::after(live);
        call.str("call_id", c.call_id)
            .opt_str("user_id", c.user_id)
            .str("kind", c.kind)
            .instant("started_at", &c.start)
            .opt_str("pool", c.pool)
            .money("held", c.held);
        live = call.finish();
    }
    live.push(b']');
    o.raw("live_calls", &live);
    opt_instant_member(&mut o, "as_of", clock.as_ref());
    o.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deck::{Deck, COLUMNS};
    use crate::engine::Engine;
    use std::sync::Arc;

    fn deck() -> Arc<Deck> {
        let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
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

    fn feed(engine: &mut Engine, lines: &[&str]) {
        for (i, l) in lines.iter().enumerate() {
            engine.feed(l.as_bytes(), i as i128 + 1, &mut |_, _| {});
        }
    }

    /// The view of the state bytes, checked against the view of the tenant in memory.
    fn view_of(engine: &Engine) -> String {
        let t = engine.tenant("t1").unwrap();
        let state = crate::state::dump_tenant(t, &engine.deck, b"{}");
        let view = account_view(&state, Some("USD")).unwrap();
        assert_eq!(tenant_view(t, Some("USD")), view, "the two paths to a view");
        String::from_utf8(view).unwrap()
    }

    const FUNDS: &str = r#"{"type":"add_funds","tenant_id":"t1","command_id":"f1","ts":"2026-11-24T10:00:00.000Z","amount":"12.5","currency":"USD"}"#;
    const POOL: &str = r#"{"type":"set_pool","tenant_id":"t1","command_id":"p1","ts":"2026-11-24T10:00:00.000Z","plan":"domestic","country":"US","minutes":10}"#;
    const LICENCE: &str = r#"{"type":"assign_licence","tenant_id":"t1","command_id":"l1","ts":"2026-11-24T10:00:00.000Z","user_id":"ann"}"#;
    const AUTO: &str = r#"{"type":"set_auto_recharge","tenant_id":"t1","command_id":"a1","ts":"2026-11-24T10:00:00.000Z","enabled":true,"trigger_amount":"20","recharge_amount":"50"}"#;
    const CALL: &str = r#"{"type":"call_start","call_id":"c1","tenant_id":"t1","user_id":"ann","kind":"user_outbound","from":"+15550000001","to":"+15550000002","usage_location":"US","switch_id":"sw","ts":"2026-11-24T10:00:00.000Z"}"#;
    const LATER: &str = r#"{"type":"add_funds","tenant_id":"t1","command_id":"f2","ts":"2026-11-24T10:01:30.500Z","amount":"1","currency":"USD"}"#;

    #[test]
    fn a_funded_account_with_a_pool_call_and_a_recharge_outstanding() {
        let mut engine = Engine::new(deck());
        feed(&mut engine, &[FUNDS, POOL, LICENCE, AUTO, CALL, LATER]);
        assert_eq!(
            view_of(&engine),
            concat!(
                r#"{"tenant_id":"t1","currency":"USD","balance":"13.5000","held":"0.0000","available":"13.5000","#,
                r#""lots":[{"lot_id":"f1","purchased_at":"2026-11-24T10:00:00.000Z","expires_at":"2027-11-24T10:00:00.000Z","remaining":"12.5000","expired":false},"#,
                r#"{"lot_id":"f2","purchased_at":"2026-11-24T10:01:30.500Z","expires_at":"2027-11-24T10:01:30.500Z","remaining":"1.0000","expired":false}],"#,
                r#""pools":[{"pool":"domestic:US","month":"2026-11","allowance_seconds":600,"used_seconds":90.5,"remaining_seconds":509.5,"live_calls":1}],"#,
                r#""auto_recharge":{"enabled":true,"trigger_amount":"20.0000","recharge_amount":"50.0000","state":"outstanding","request_id":"t1:recharge:1","request_amount":"50.0000","backoff_until":null},"#,
                r#""licensed_users":["ann"],"#,
                r#""live_calls":[{"call_id":"c1","user_id":"ann","kind":"user_outbound","started_at":"2026-11-24T10:00:00.000Z","pool":"domestic:US","held":"0.0000"}],"#,
                r#""as_of":"2026-11-24T10:01:30.500Z"}"#
            )
        );
    }

    #[test]
    fn a_failed_recharge_backs_off_for_a_day() {
        let mut engine = Engine::new(deck());
        let failed = r#"{"type":"payment_result","tenant_id":"t1","command_id":"r1","ts":"2026-11-24T11:00:00.000Z","request_id":"t1:recharge:1","status":"failed","reason":"card_expired"}"#;
        feed(&mut engine, &[FUNDS, AUTO, failed]);
        let view = view_of(&engine);
        assert!(view.contains(r#""state":"backing_off","request_id":null,"request_amount":null,"backoff_until":"2026-11-25T11:00:00.000Z""#), "{view}");
    }

    #[test]
    fn auto_recharge_never_set_is_off() {
        let mut engine = Engine::new(deck());
        feed(&mut engine, &[FUNDS]);
        let view = view_of(&engine);
        assert!(view.contains(r#""auto_recharge":{"enabled":false,"trigger_amount":null,"recharge_amount":null,"state":"off""#), "{view}");
        assert!(view.contains(r#""pools":[],"#));
    }

    #[test]
    fn bad_state_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"[]", b"{\"v\":2}", b"{\"v\":1,\"tenant_id\":3}"] {
            assert!(account_view(bad, None).is_err());
        }
    }
}
