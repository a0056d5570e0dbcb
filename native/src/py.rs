//! The Python face of the core: `rating_engine._core`.
//!
//! Thin on purpose: bytes in, bytes out, one call per batch of lines, the GIL released while
//! the core works. `rating_engine/core.py` wraps these into the package's Python API.

use std::sync::Arc;

use num_bigint::BigInt;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::batch;
use crate::clock::{self, Instant};
use crate::deck::{Deck, Service};
use crate::engine::{Engine, Simulation};
use crate::events;
use crate::money;
use crate::rate;
use crate::records::{Output, Topic};
use crate::state;
use crate::table;

create_exception!(
    _core,
    DeckError,
    PyValueError,
    "An invalid deck; the message names file, line and column."
);

#[pyclass(name = "Deck", module = "rating_engine._core", frozen)]
pub struct PyDeck {
    pub inner: Arc<Deck>,
}

#[pymethods]
impl PyDeck {
    #[getter]
    fn currency(&self) -> Option<String> {
        self.inner.currency.clone()
    }

    #[getter]
    fn path(&self) -> String {
        self.inner.path.clone()
    }

    fn __len__(&self) -> usize {
        self.inner.rows.len()
    }

    /// Row `index` as a dict of its compiled fields (for tools and the deck's tests).
    fn row_fields<'py>(&self, py: Python<'py>, index: usize) -> PyResult<Bound<'py, PyDict>> {
        let r = self
            .inner
            .rows
            .get(index)
            .ok_or_else(|| PyValueError::new_err("no such row"))?;
        let d = PyDict::new(py);
        d.set_item("index", r.index)?;
        d.set_item("line", r.line)?;
        d.set_item("prefix", &r.prefix)?;
        d.set_item("country", &r.country)?;
        d.set_item("destination", &r.destination)?;
        d.set_item("zone", &r.zone)?;
        d.set_item("number_type", &r.number_type)?;
        d.set_item("service", r.service.as_str())?;
        d.set_item("rate_text", &r.rate_text)?;
        d.set_item("fee_text", &r.fee_text)?;
        d.set_item("rate_micros_per_min", r.rate_micros_per_min)?;
        d.set_item("fee_micros", r.fee_micros)?;
        d.set_item("currency", &r.currency)?;
        d.set_item("first_increment_s", r.first_increment_s)?;
        d.set_item("next_increment_s", r.next_increment_s)?;
        d.set_item("effective_from_us", r.effective_from_us)?;
        d.set_item("effective_to_us", r.effective_to_us)?;
        Ok(d)
    }

    /// The index of the row that prices `digits` for `service` at instant `at` (longest
    /// prefix in effect), or None.
    fn lookup_index(
        &self,
        service: &str,
        digits: &str,
        at: &Bound<'_, PyAny>,
    ) -> PyResult<Option<usize>> {
        let service = match service {
            "outbound" => Service::Outbound,
            "tollfree_inbound" => Service::TollfreeInbound,
            other => return Err(PyValueError::new_err(format!("unknown service {other:?}"))),
        };
        Ok(self
            .inner
            .lookup(service, digits, &instant_from_py(at)?)
            .map(|r| r.index))
    }
}

fn py_repr(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| crate::pystr::py_repr(s))
}

/// Compile deck rows given as text cells in header order (None for an empty cell).
#[pyfunction]
#[pyo3(signature = (path, header, rows, first_line = 2))]
fn compile_rows(
    py: Python<'_>,
    path: &str,
    header: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    first_line: u64,
) -> PyResult<PyDeck> {
    match Deck::compile_rows(path, &header, &rows, first_line) {
        Ok(deck) => Ok(PyDeck {
            inner: Arc::new(deck),
        }),
        Err(e) => Err(DeckError::new_err(e.message_with(|v| py_repr(py, v)))),
    }
}

fn instant_to_py(py: Python<'_>, t: &Instant) -> PyResult<Py<PyAny>> {
    match t {
        Instant::Us(us) => Ok(us.into_pyobject(py)?.into_any().unbind()),
        Instant::Q(n, d) => {
            let fraction = py.import("fractions")?.getattr("Fraction")?;
            Ok(fraction.call1((*n, *d))?.unbind())
        }
        Instant::Frac(r) => {
            let fraction = py.import("fractions")?.getattr("Fraction")?;
            Ok(fraction
                .call1((format!("{}/{}", r.numer(), r.denom()),))?
                .unbind())
        }
    }
}

fn instant_from_py(t: &Bound<'_, PyAny>) -> PyResult<Instant> {
    if let Ok(us) = t.extract::<i128>() {
        return Ok(Instant::Us(us));
    }
    let n: i128 = t.getattr("numerator")?.extract()?;
    let d: i128 = t.getattr("denominator")?.extract()?;
    Ok(Instant::from_ratio(num_rational::BigRational::new(
        BigInt::from(n),
        BigInt::from(d.max(1)),
    )))
}

/// ISO 8601 with a zone to exact epoch microseconds (an int, or a Fraction); ValueError if not.
#[pyfunction]
fn parse_instant(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    let t = clock::parse_instant(text).map_err(|_| {
        PyValueError::new_err(format!("{} is not ISO 8601 with a zone", py_repr(py, text)))
    })?;
    instant_to_py(py, &t)
}

#[pyfunction]
fn format_instant(t: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(clock::format_instant(&instant_from_py(t)?))
}

#[pyfunction]
fn seconds_text(t: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(clock::seconds_text(&instant_from_py(t)?))
}

#[pyfunction]
fn format_money(micros: i128) -> String {
    money::format_money(micros)
}

/// An input line's `ts` (int or Fraction microseconds), or None when it has none that parses.
#[pyfunction]
fn stamp_of(py: Python<'_>, raw: &[u8]) -> PyResult<Option<Py<PyAny>>> {
    events::stamp_of(raw)
        .map(|t| instant_to_py(py, &t))
        .transpose()
}

/// Price whole CDR lines: (output bytes, stderr messages, lines seen).
#[pyfunction]
#[pyo3(signature = (deck, data, name, first_line = 1, threads = 1))]
fn rate_text<'py>(
    py: Python<'py>,
    deck: &PyDeck,
    data: &[u8],
    name: &str,
    first_line: u64,
    threads: usize,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, u64)> {
    let d = deck.inner.clone();
    let parts = py.detach(|| rate::rate_parts(&d, data, name, first_line, threads));
    let joined = |pick: fn(&rate::Rated) -> &[u8]| {
        let total = parts.iter().map(|r| pick(r).len()).sum();
        PyBytes::new_with(py, total, |buf| {
            let mut at = 0;
            for r in &parts {
                let b = pick(r);
                buf[at..at + b.len()].copy_from_slice(b);
                at += b.len();
            }
            Ok(())
        })
    };
    let output = joined(|r| &r.output)?;
    let messages = joined(|r| &r.messages)?;
    Ok((output, messages, parts.iter().map(|r| r.lines).sum()))
}

/// One CDR line priced: (record bytes, refusal reason or None).
#[pyfunction]
fn rate_line<'py>(
    py: Python<'py>,
    deck: &PyDeck,
    raw: &[u8],
) -> (Bound<'py, PyBytes>, Option<String>) {
    let (record, reason) = rate::rate_line(&deck.inner, raw);
    (PyBytes::new(py, &record), reason)
}

/// `simulate` fed whole lines: `feed` returns the simulate lines of what they caused.
#[pyclass(name = "Simulation", module = "rating_engine._core")]
pub struct PySimulation {
    inner: Simulation,
    /// The records of one `feed`, kept between calls so its pages stay mapped and warm.
    sink: Vec<u8>,
}

#[pymethods]
impl PySimulation {
    #[new]
    fn new(deck: &PyDeck) -> Self {
        PySimulation {
            inner: Simulation::new(deck.inner.clone()),
            sink: Vec::new(),
        }
    }

    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
        let (inner, sink) = (&mut self.inner, &mut self.sink);
        sink.clear();
        py.detach(|| inner.feed_lines(data, sink));
        PyBytes::new(py, sink)
    }

    fn finish<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut sink = Vec::new();
        self.inner.finish(&mut sink);
        PyBytes::new(py, &sink)
    }
}

/// An engine's record callback that keeps a copy of each record in `out`.
fn collect(out: &mut Vec<Output>) -> impl FnMut(Topic, &[u8]) + '_ {
    |topic, payload| out.push((topic, payload.to_vec()))
}

fn outputs_to_py<'py>(
    py: Python<'py>,
    out: Vec<Output>,
) -> Vec<(&'static str, Bound<'py, PyBytes>)> {
    out.into_iter()
        .map(|(t, p)| (t.as_str(), PyBytes::new(py, &p)))
        .collect()
}

/// The multi-tenant engine fed one line at a time, with its tenants' state readable (tests).
#[pyclass(name = "Engine", module = "rating_engine._core")]
pub struct PyEngine {
    inner: Engine,
}

#[pymethods]
impl PyEngine {
    #[new]
    fn new(deck: &PyDeck) -> Self {
        PyEngine {
            inner: Engine::new(deck.inner.clone()),
        }
    }

    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        raw: &[u8],
        line: i128,
    ) -> Vec<(&'static str, Bound<'py, PyBytes>)> {
        let mut out = Vec::new();
        self.inner.feed(raw, line, &mut collect(&mut out));
        outputs_to_py(py, out)
    }

    fn finish<'py>(&mut self, py: Python<'py>) -> Vec<(&'static str, Bound<'py, PyBytes>)> {
        let mut out = Vec::new();
        self.inner.finish(&mut collect(&mut out));
        outputs_to_py(py, out)
    }

    /// Tenant ids in order of first appearance.
    fn tenant_ids(&self) -> Vec<String> {
        self.inner
            .tenants
            .iter()
            .map(|t| t.tenant_id.clone())
            .collect()
    }

    /// A tenant's state bytes (the changelog format), or None if it never appeared. With
    /// `until`, a copy first prepays the boundaries before that instant that are sure to
    /// succeed, so the view is the one a timer or input at `until` would start from.
    #[pyo3(signature = (tenant_id, until = None))]
    fn tenant_state<'py>(
        &self,
        py: Python<'py>,
        tenant_id: &str,
        until: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let Some(t) = self.inner.tenant(tenant_id) else {
            return Ok(None);
        };
        let deck = &self.inner.deck;
        let bytes = match until {
            None => state::dump_tenant(t, deck, b"{}"),
            Some(u) => {
                let mut copy = t.clone();
                copy.catch_up(deck, &instant_from_py(u)?);
                state::dump_tenant(&copy, deck, b"{}")
            }
        };
        Ok(Some(PyBytes::new(py, &bytes)))
    }

    /// Fire every timer due before `until` (phase orders timers against an input at the
    /// same instant), as the driver does before each input.
    fn run_until<'py>(
        &mut self,
        py: Python<'py>,
        until: &Bound<'py, PyAny>,
        phase: u8,
    ) -> PyResult<Vec<(&'static str, Bound<'py, PyBytes>)>> {
        let mut out = Vec::new();
        self.inner
            .run_until(&instant_from_py(until)?, phase, &mut collect(&mut out));
        Ok(outputs_to_py(py, out))
    }

    /// The engine's clock (the latest instant it has reached), or None before any input.
    #[getter]
    fn clock(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner
            .clock
            .as_ref()
            .map(|c| instant_to_py(py, c))
            .transpose()
    }
}

/// One tenant restored from (or written as) state bytes, for a streaming driver to read its
/// timers and live calls (e.g. when it plans the timers of the tenants it took over).
/// Deciding is `Driver`'s, a batch at a time.
#[pyclass(name = "Tenant", module = "rating_engine._core")]
pub struct PyTenant {
    inner: crate::tenant::Tenant,
    deck: Arc<Deck>,
}

#[pymethods]
impl PyTenant {
    #[new]
    fn new(deck: &PyDeck, tenant_id: &str) -> Self {
        PyTenant {
            inner: crate::tenant::Tenant::new(tenant_id),
            deck: deck.inner.clone(),
        }
    }

    /// A tenant from its state bytes: (tenant, the driver's extra members as JSON bytes).
    #[staticmethod]
    fn load<'py>(
        py: Python<'py>,
        deck: &PyDeck,
        data: &[u8],
    ) -> PyResult<(PyTenant, Bound<'py, PyBytes>)> {
        let (inner, extra) = state::load_tenant(data, &deck.inner)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok((
            PyTenant {
                inner,
                deck: deck.inner.clone(),
            },
            PyBytes::new(py, &extra),
        ))
    }

    /// The state bytes, with `extra_json` (a JSON object) as the driver's own members.
    fn dump<'py>(&self, py: Python<'py>, extra_json: &[u8]) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &state::dump_tenant(&self.inner, &self.deck, extra_json))
    }

    #[getter]
    fn tenant_id(&self) -> String {
        self.inner.tenant_id.clone()
    }

    #[getter]
    fn live_calls(&self) -> usize {
        self.inner.live.len()
    }

    /// The next instant (and phase) the tenant needs the clock, or None.
    fn next_due(&self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, u8)>> {
        self.inner
            .next_due(&self.deck)
            .map(|(at, phase)| Ok((instant_to_py(py, &at)?, phase)))
            .transpose()
    }
}

/// One of the worker's changelog-backed tables (`table.rs`): bytes by key, each key at its
/// partition, the open transaction's writes undone by `rollback`. The driver reads and writes
/// them in Rust, so a batch's lookups cost no Python call.
#[pyclass(name = "Table", module = "rating_engine._core")]
pub struct PyTable {
    #[pyo3(get)]
    topic: String,
    inner: table::Table,
}

#[pymethods]
impl PyTable {
    /// An empty table whose changelog is `topic`.
    #[new]
    fn new(topic: String) -> Self {
        PyTable {
            topic,
            inner: table::Table::new(),
        }
    }

    fn get<'py>(&self, py: Python<'py>, key: &[u8]) -> Option<Bound<'py, PyBytes>> {
        self.inner.get(key).map(|v| PyBytes::new(py, v))
    }

    /// Write `key` at `partition` in the open transaction.
    fn put(&mut self, partition: i64, key: &[u8], value: &[u8]) {
        self.inner.put(partition, key.into(), value.into());
    }

    /// A changelog record read back on assignment (`value` None: a tombstone).
    #[pyo3(signature = (partition, key, value))]
    fn restored(&mut self, partition: i64, key: &[u8], value: Option<&[u8]>) {
        self.inner
            .restored(partition, key.into(), value.map(Into::into));
    }

    fn committed(&mut self) {
        self.inner.committed();
    }

    fn rollback(&mut self) {
        self.inner.rollback();
    }

    /// Forget the keys of `partitions` (one pass over the table, whatever their number).
    fn drop(&mut self, partitions: Vec<i64>) {
        self.inner.drop_partitions(&partitions);
    }

    /// The `(key, value)` pairs of `partition`, in no particular order.
    fn partition_items<'py>(
        &self,
        py: Python<'py>,
        partition: i64,
    ) -> Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        self.inner
            .partition_items(partition)
            .map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v)))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, key: &[u8]) -> bool {
        self.inner.contains(key)
    }
}

/// An input record: (topic, partition, offset, key, value).
/// Borrowed, not copied: the core reads the client's bytes in place.
type PyRecord<'py> = (
    Bound<'py, PyString>,
    i64,
    i64,
    Option<Bound<'py, PyBytes>>,
    Option<Bound<'py, PyBytes>>,
);

type PyDecided<'py> = (
    Vec<(Option<String>, &'static str, Bound<'py, PyBytes>, bool)>,
    Vec<(i64, Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
    Vec<(String, i64, Option<Py<PyAny>>, usize)>,
    Vec<(&'static str, &'static str)>,
);

type PyUnsaved<'py> = Vec<(String, i64, Bound<'py, PyBytes>, Bound<'py, PyBytes>)>;

/// A streaming driver's tenants, decided one batch of input records per call.
///
/// The tenant states and the duplicate memory stay in the driver's `Table`s, handed to each
/// `decide`: the core reads both, writes the batch's seen entries itself, and hands back the
/// changed tenants (their states come from `take_unsaved`). See `batch.rs` (the
/// module docs) for the seen entries' stamps and why an entry newer than its tenant's state
/// is ignored.
#[pyclass(name = "Driver", module = "rating_engine._core")]
pub struct PyDriver {
    inner: batch::Driver,
}

#[pymethods]
impl PyDriver {
    #[new]
    fn new(deck: &PyDeck) -> Self {
        PyDriver {
            inner: batch::Driver::new(deck.inner.clone()),
        }
    }

    /// Decide `records`, in order: each `(topic, partition, offset, key, value)` with topic
    /// `calls`, `accounts` or `ticks` (a tick that fires now: `{"tenant_id", "due"}`), key and
    /// value bytes or None (a value None is a tombstone). `tenants` holds tenant states by id,
    /// `seen` the duplicate memory by `tenant\x1fkey` (both `Table`s); the batch's seen entries
    /// are written to `seen` (in its open transaction) before this returns.
    ///
    /// Returns `(outputs, seen_writes, changed, kinds)`: outputs as `(tenant_id or None,
    /// topic, bytes, timed)`; the seen entries written, for the changelog, as `(partition,
    /// key, value)`; each changed tenant once as `(tenant_id, partition, next_due or None,
    /// live_calls)` (its state comes from `take_unsaved`); and per calls/accounts record
    /// `(topic, its type or "rejected")`. ValueError when a stored state does not load or a
    /// record's topic is unknown (then nothing of the batch is returned or written).
    fn decide<'py>(
        &mut self,
        py: Python<'py>,
        records: Vec<PyRecord<'py>>,
        tenants: PyRef<'py, PyTable>,
        mut seen: PyRefMut<'py, PyTable>,
    ) -> PyResult<PyDecided<'py>> {
        let mut recs = Vec::with_capacity(records.len());
        for (topic, partition, offset, key, value) in &records {
            let topic = topic.to_str()?;
            let source = batch::Source::parse(topic)
                .ok_or_else(|| PyValueError::new_err(format!("unknown input topic {topic:?}")))?;
            recs.push(batch::Record {
                source,
                partition: *partition,
                offset: *offset,
                key: key.as_ref().map(|k| k.as_bytes()),
                value: value.as_ref().map(|v| v.as_bytes()),
            });
        }
        let mut store = batch::Tables {
            tenants: &tenants.inner,
            seen: &seen.inner,
        };
        let decided = self.inner.decide(&recs, &mut store);
        let d = decided.map_err(PyValueError::new_err)?;
        let outputs = d
            .outputs
            .into_iter()
            .map(|o| {
                (
                    o.tenant_id,
                    o.topic.as_str(),
                    PyBytes::new(py, &o.payload),
                    o.timed,
                )
            })
            .collect();
        let mut writes = Vec::with_capacity(d.seen.len());
        for w in d.seen {
            writes.push((
                w.partition,
                PyBytes::new(py, &w.key),
                PyBytes::new(py, &w.value),
            ));
            seen.inner.put(
                w.partition,
                w.key.into_boxed_slice(),
                w.value.into_boxed_slice(),
            );
        }
        let mut changed = Vec::with_capacity(d.changed.len());
        for c in d.changed {
            let due = c.next_due.map(|t| instant_to_py(py, &t)).transpose()?;
            changed.push((c.tenant_id, c.partition, due, c.live_calls));
        }
        let kinds = d.kinds.into_iter().map(|(s, k)| (s.as_str(), k)).collect();
        Ok((outputs, writes, changed, kinds))
    }

    /// Each tenant changed since the last call, once: `(tenant_id, partition, state,
    /// account_view)`, as of now. A driver takes them just before it commits: the last state
    /// of a transaction is the only one ever read back.
    fn take_unsaved<'py>(&mut self, py: Python<'py>) -> PyResult<PyUnsaved<'py>> {
        Ok(self
            .inner
            .take_unsaved()
            .into_iter()
            .map(|u| {
                (
                    u.tenant_id,
                    u.partition,
                    PyBytes::new(py, &u.state),
                    PyBytes::new(py, &u.view),
                )
            })
            .collect())
    }

    /// Drop the tenants kept in memory, and forget which were unsaved (the driver's partitions
    /// were revoked, or its transaction aborted).
    fn forget(&mut self) {
        self.inner.forget();
    }

    fn __len__(&self) -> usize {
        self.inner.tenant_count()
    }
}

/// An input's envelope: (type or the dead-letter reason, accepted, tenant_id, ts).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn parse_input(
    py: Python<'_>,
    deck: &PyDeck,
    raw: &[u8],
) -> PyResult<(String, bool, Option<String>, Option<Py<PyAny>>)> {
    match events::parse_event(raw, deck.inner.currency.as_deref()) {
        Ok(ev) => Ok((
            ev.body.type_name().to_owned(),
            true,
            Some(ev.tenant_id.clone()),
            Some(instant_to_py(py, &ev.ts)?),
        )),
        Err(r) => Ok((r.reason, false, r.tenant_id, None)),
    }
}

/// The account view (JSON bytes) of a tenant's state bytes; `currency` is the deck's.
#[pyfunction]
#[pyo3(signature = (state, currency = None))]
fn account_view<'py>(
    py: Python<'py>,
    state: &[u8],
    currency: Option<&str>,
) -> PyResult<Bound<'py, PyBytes>> {
    crate::view::account_view(state, currency)
        .map(|v| PyBytes::new(py, &v))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DeckError", m.py().get_type::<DeckError>())?;
    m.add_class::<PyDeck>()?;
    m.add_class::<PySimulation>()?;
    m.add_class::<PyEngine>()?;
    m.add_class::<PyTenant>()?;
    m.add_class::<PyDriver>()?;
    m.add_class::<PyTable>()?;
    m.add_function(wrap_pyfunction!(parse_input, m)?)?;
    m.add_function(wrap_pyfunction!(account_view, m)?)?;
    m.add("EVENTS", crate::tenant::EVENTS)?;
    m.add("AFTER", crate::tenant::AFTER)?;
    m.add_function(wrap_pyfunction!(compile_rows, m)?)?;
    m.add_function(wrap_pyfunction!(parse_instant, m)?)?;
    m.add_function(wrap_pyfunction!(format_instant, m)?)?;
    m.add_function(wrap_pyfunction!(seconds_text, m)?)?;
    m.add_function(wrap_pyfunction!(format_money, m)?)?;
    m.add_function(wrap_pyfunction!(stamp_of, m)?)?;
    m.add_function(wrap_pyfunction!(rate_text, m)?)?;
    m.add_function(wrap_pyfunction!(rate_line, m)?)?;
    m.add("OUTPUT_TOPICS", crate::records::OUTPUT_TOPICS.to_vec())?;
    m.add("COLUMNS", crate::deck::COLUMNS.to_vec())?;
    m.add("US_PER_S", clock::US_PER_S)?;
    Ok(())
}
