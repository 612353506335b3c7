//! What a shared execution keeps of its latest responses, which is all its subscribers read:
//! a subscriber is a position in this window, so one that stops reading holds nothing.
//!
//! An execution drops its oldest response once it keeps more than [`KEPT_RESPONSES`], more
//! than [`KEPT_BYTES`] (estimated), or, while all executions together keep more than
//! [`KEPT_BYTES_IN_ALL`], more than [`KEPT_ALWAYS`]. A subscriber whose position falls before
//! the window has fallen behind and is told how many it missed (`SUBSCRIPTION_LAGGED`). So a
//! thousand stalled subscribers of large payloads cost what one does, and an execution costs
//! only the responses it keeps (no per-execution buffer of slots).

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_graphql::{Response, Value};

/// Responses an execution keeps at most.
const KEPT_RESPONSES: usize = 512;
/// Bytes of responses (estimated) one execution keeps at most (always its latest one).
const KEPT_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of responses all executions keep together before each keeps only its latest
/// [`KEPT_ALWAYS`].
const KEPT_BYTES_IN_ALL: usize = 64 * 1024 * 1024;
const KEPT_ALWAYS: usize = 16;

/// One execution's kept responses, numbered from 0 in the order it answered them; what it
/// keeps counts toward `in_all`.
pub(super) struct Kept {
    responses: VecDeque<(Arc<Response>, usize)>,
    /// The number of the oldest kept response.
    first: u64,
    bytes: usize,
    in_all: Arc<AtomicUsize>,
}

/// What a subscriber reads at its position.
pub(super) struct Read {
    /// Responses between its position and the oldest kept one: dropped before it read them.
    pub missed: u64,
    /// The response at its position (after the missed ones), if the execution has answered it.
    pub response: Option<Arc<Response>>,
}

impl Kept {
    pub(super) fn new(in_all: Arc<AtomicUsize>) -> Self {
        Self {
            responses: VecDeque::new(),
            first: 0,
            bytes: 0,
            in_all,
        }
    }

    /// The number the next response will have: where a subscriber joining now starts.
    pub(super) fn next(&self) -> u64 {
        self.first + self.responses.len() as u64
    }

    /// Keeps `response` (dropping the oldest as the bounds say).
    pub(super) fn keep(&mut self, response: Response) {
        let bytes = estimated_bytes(&response.data)
            + response
                .errors
                .iter()
                .map(|e| e.message.len() + 64)
                .sum::<usize>();
        self.responses.push_back((Arc::new(response), bytes));
        self.bytes += bytes;
        self.in_all.fetch_add(bytes, Ordering::Relaxed);
        while self.over() {
            let Some((_, bytes)) = self.responses.pop_front() else {
                break;
            };
            self.first += 1;
            self.bytes -= bytes;
            self.in_all.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// What a subscriber at position `at` reads.
    pub(super) fn read(&self, at: u64) -> Read {
        let missed = self.first.saturating_sub(at);
        let index = usize::try_from(at + missed - self.first).unwrap_or(usize::MAX);
        Read {
            missed,
            response: self
                .responses
                .get(index)
                .map(|(response, _)| Arc::clone(response)),
        }
    }

    fn over(&self) -> bool {
        let kept = self.responses.len();
        kept > KEPT_RESPONSES
            || (kept > 1 && self.bytes > KEPT_BYTES)
            || (kept > KEPT_ALWAYS && self.in_all.load(Ordering::Relaxed) > KEPT_BYTES_IN_ALL)
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.in_all.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// About how many bytes `value` occupies.
fn estimated_bytes(value: &Value) -> usize {
    const NODE: usize = 32;
    match value {
        Value::String(text) => NODE + text.len(),
        Value::Binary(bytes) => NODE + bytes.len(),
        Value::List(items) => NODE + items.iter().map(estimated_bytes).sum::<usize>(),
        Value::Object(fields) => {
            NODE + fields
                .iter()
                .map(|(name, value)| NODE + name.len() + estimated_bytes(value))
                .sum::<usize>()
        }
        Value::Null | Value::Number(_) | Value::Boolean(_) | Value::Enum(_) => NODE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(bytes: usize) -> Response {
        Response::new(Value::String("x".repeat(bytes)))
    }

    fn length_at(kept: &Kept, at: u64) -> Option<usize> {
        match &kept.read(at).response?.data {
            Value::String(text) => Some(text.len()),
            _ => None,
        }
    }

    #[test]
    fn a_subscriber_reads_in_order_and_waits_at_the_end() {
        let mut kept = Kept::new(Arc::default());
        assert_eq!(kept.next(), 0);
        assert!(kept.read(0).response.is_none(), "nothing answered yet");
        kept.keep(response(1));
        kept.keep(response(2));
        assert_eq!(kept.next(), 2);
        assert_eq!(length_at(&kept, 0), Some(1));
        assert_eq!(length_at(&kept, 1), Some(2));
        let end = kept.read(2);
        assert_eq!((end.missed, end.response.is_none()), (0, true));
    }

    #[test]
    fn an_execution_keeps_its_latest_responses_within_count_and_bytes() {
        let in_all = Arc::new(AtomicUsize::new(0));
        let mut kept = Kept::new(Arc::clone(&in_all));
        for _ in 0..=KEPT_RESPONSES {
            kept.keep(response(10));
        }
        let behind = kept.read(0);
        assert_eq!(behind.missed, 1, "the oldest beyond the count is dropped");
        assert_eq!(length_at(&kept, 1), Some(10));

        kept.keep(response(KEPT_BYTES / 2));
        let bigger = kept.next();
        kept.keep(response(KEPT_BYTES / 2 + 1));
        let behind = kept.read(1);
        assert_eq!(
            behind.missed,
            bigger - 1,
            "over the bytes: all older ones go"
        );
        assert_eq!(
            length_at(&kept, bigger),
            Some(KEPT_BYTES / 2 + 1),
            "the latest is always kept"
        );

        drop(kept);
        assert_eq!(
            in_all.load(Ordering::Relaxed),
            0,
            "a dropped execution counts nothing"
        );
    }

    #[test]
    fn executions_keep_little_while_all_of_them_keep_a_lot() {
        let in_all = Arc::new(AtomicUsize::new(0));
        let mut others = Kept::new(Arc::clone(&in_all));
        // Other executions hold most of the budget (each response under the per-execution bound).
        let mut held = Vec::new();
        while in_all.load(Ordering::Relaxed) <= KEPT_BYTES_IN_ALL {
            let mut one = Kept::new(Arc::clone(&in_all));
            for _ in 0..3 {
                one.keep(response(KEPT_BYTES / 4));
            }
            held.push(one);
        }
        for _ in 0..KEPT_ALWAYS * 2 {
            others.keep(response(10));
        }
        assert_eq!(
            others.read(0).missed,
            KEPT_ALWAYS as u64,
            "only the latest few while the total is over"
        );
        drop(held);
        let from = others.next();
        for _ in 0..KEPT_ALWAYS * 2 {
            others.keep(response(10));
        }
        assert_eq!(others.read(from).missed, 0, "room again");
    }
}
