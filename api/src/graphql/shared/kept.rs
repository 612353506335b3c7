//! What a shared execution keeps of its latest responses, so that subscribers a little behind
//! still get them, and what a subscriber that stops reading can hold on to: nothing large.
//!
//! The channel to subscribers carries weak references; the execution alone holds its
//! responses, and drops its oldest once it keeps more than [`KEPT_RESPONSES`], more than
//! [`KEPT_BYTES`] (estimated), or, while all executions together keep more than
//! [`KEPT_BYTES_IN_ALL`], more than [`KEPT_ALWAYS`]. A subscriber that comes to a dropped
//! response has fallen behind and is told so (`SUBSCRIPTION_LAGGED`). So a socket that
//! stops reading pins a few bytes per change it missed (the channel's slots), not the
//! changes: a thousand stalled subscribers of large payloads cost what one does.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Weak,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_graphql::{Response, Value};

/// Responses an execution keeps at most; also the channel's capacity.
pub(super) const KEPT_RESPONSES: usize = 512;
/// Bytes of responses (estimated) one execution keeps at most (always its latest one).
const KEPT_BYTES: usize = 4 * 1024 * 1024;
/// Bytes of responses all executions keep together before each keeps only its latest
/// [`KEPT_ALWAYS`].
const KEPT_BYTES_IN_ALL: usize = 64 * 1024 * 1024;
const KEPT_ALWAYS: usize = 16;

/// A response as executions keep it (boxed, so a weak reference left in the channel keeps
/// only a pointer's worth of it once the execution has let go).
pub(super) struct SharedResponse(Box<Response>);

impl SharedResponse {
    pub(super) fn response(&self) -> &Response {
        &self.0
    }
}

/// One execution's kept responses; what it keeps counts toward `in_all`.
pub(super) struct Kept {
    responses: VecDeque<(Arc<SharedResponse>, usize)>,
    bytes: usize,
    in_all: Arc<AtomicUsize>,
}

impl Kept {
    pub(super) fn new(in_all: Arc<AtomicUsize>) -> Self {
        Self {
            responses: VecDeque::new(),
            bytes: 0,
            in_all,
        }
    }

    /// Keeps `response` (dropping the oldest as the bounds say); the weak reference is what
    /// subscribers get.
    pub(super) fn keep(&mut self, response: Response) -> Weak<SharedResponse> {
        let bytes = estimated_bytes(&response.data)
            + response
                .errors
                .iter()
                .map(|e| e.message.len() + 64)
                .sum::<usize>();
        let shared = Arc::new(SharedResponse(Box::new(response)));
        let weak = Arc::downgrade(&shared);
        self.responses.push_back((shared, bytes));
        self.bytes += bytes;
        self.in_all.fetch_add(bytes, Ordering::Relaxed);
        while self.over() {
            let Some((_, bytes)) = self.responses.pop_front() else {
                break;
            };
            self.bytes -= bytes;
            self.in_all.fetch_sub(bytes, Ordering::Relaxed);
        }
        weak
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

    #[test]
    fn an_execution_keeps_its_latest_responses_within_count_and_bytes() {
        let in_all = Arc::new(AtomicUsize::new(0));
        let mut kept = Kept::new(Arc::clone(&in_all));
        let first = kept.keep(response(10));
        let weaks: Vec<_> = (0..KEPT_RESPONSES)
            .map(|_| kept.keep(response(10)))
            .collect();
        assert!(
            first.upgrade().is_none(),
            "the oldest beyond the count is dropped"
        );
        assert!(weaks.iter().all(|weak| weak.upgrade().is_some()));

        let big = kept.keep(response(KEPT_BYTES / 2));
        let bigger = kept.keep(response(KEPT_BYTES / 2 + 1));
        assert!(big.upgrade().is_none(), "over the bytes: the older ones go");
        assert!(weaks.iter().all(|weak| weak.upgrade().is_none()));
        let response = bigger.upgrade().expect("the latest is always kept");
        assert!(
            matches!(&response.response().data, Value::String(text) if text.len() == KEPT_BYTES / 2 + 1)
        );
        drop(response);

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
        let weaks: Vec<_> = (0..KEPT_ALWAYS * 2)
            .map(|_| others.keep(response(10)))
            .collect();
        let alive = weaks.iter().filter(|weak| weak.upgrade().is_some()).count();
        assert_eq!(
            alive, KEPT_ALWAYS,
            "only the latest few while the total is over"
        );
        drop(held);
        let weaks: Vec<_> = (0..KEPT_ALWAYS * 2)
            .map(|_| others.keep(response(10)))
            .collect();
        assert!(
            weaks.iter().all(|weak| weak.upgrade().is_some()),
            "room again"
        );
    }
}
