//! A budget for the shortcut when it runs in the caller's process.
//!
//! The shortcut evaluates on `serde_json::Value`s, cloning what it selects, so a small
//! expression can still build a large value (`[.,.] | [.,.] | …` doubles at each step,
//! `"x" * .n` repeats). When the caller asks for a bounded run ([`metered`]), every node
//! evaluated and every value cloned or built burns fuel, measured in approximate bytes; when it
//! runs out, the shortcut declines, and the caller hands the expression to an evaluator process
//! where the real limits hold. Unmetered runs (inside an evaluator) have endless fuel.
//!
//! Bytes are not time: cloning many small values costs far more per byte than copying one
//! string (`[.,.]` doubled forty times spent 200 ms of a release build's CPU on 4 MiB of fuel,
//! on the thread of an async runtime). A run in the server ([`metered_for`]) therefore also
//! has a deadline, checked at every burn, past which it declines the same way.

use std::{
    cell::Cell,
    time::{Duration, Instant},
};

use serde_json::Value;

thread_local! {
    static FUEL: Cell<u64> = const { Cell::new(u64::MAX) };
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Run `f` with `fuel`; the previous budget is restored afterwards.
#[cfg(test)]
pub(crate) fn metered<T>(fuel: u64, f: impl FnOnce() -> T) -> T {
    with_budget(fuel, None, f)
}

/// [`metered`], for at most `time`: past it the run declines as if out of fuel, so the caller's
/// thread is held no longer than that (plus the one step that was under way).
pub(crate) fn metered_for<T>(fuel: u64, time: Duration, f: impl FnOnce() -> T) -> T {
    with_budget(fuel, Instant::now().checked_add(time), f)
}

fn with_budget<T>(fuel: u64, deadline: Option<Instant>, f: impl FnOnce() -> T) -> T {
    let previous = (
        FUEL.with(|cell| cell.replace(fuel)),
        DEADLINE.with(|cell| cell.replace(deadline)),
    );
    let result = f();
    FUEL.with(|cell| cell.set(previous.0));
    DEADLINE.with(|cell| cell.set(previous.1));
    result
}

fn past_deadline() -> bool {
    DEADLINE.with(|cell| {
        cell.get()
            .is_some_and(|deadline| Instant::now() >= deadline)
    })
}

/// Spend `amount`; `None` (and an empty tank) when there is not that much left, or the run's
/// deadline has passed.
pub(super) fn burn(amount: u64) -> Option<()> {
    FUEL.with(|cell| {
        let left = cell.get();
        if left == u64::MAX {
            return Some(());
        }
        match left.checked_sub(amount) {
            Some(rest) if !past_deadline() => {
                cell.set(rest);
                Some(())
            }
            _ => {
                cell.set(0);
                None
            }
        }
    })
}

/// What a clone of `value` costs, counted without recursion and only as far as the fuel left.
pub(super) fn burn_value(value: &Value) -> Option<()> {
    let left = FUEL.with(Cell::get);
    if left == u64::MAX {
        return Some(());
    }
    burn(weight(value, left.saturating_add(1)))
}

/// Approximate size of `value` as JSON text in bytes, counting at most to `cap`.
pub(crate) fn weight(value: &Value, cap: u64) -> u64 {
    let mut total = 0u64;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        total = total.saturating_add(match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() as u64 + 2,
            Value::Array(items) => {
                pending.extend(items.iter());
                2 + items.len() as u64
            }
            Value::Object(fields) => {
                for (key, field) in fields {
                    total = total.saturating_add(key.len() as u64 + 3);
                    pending.push(field);
                }
                2
            }
        });
        if total >= cap {
            return total;
        }
    }
    total
}

/// Nesting of arrays and objects in `value`, counting at most to `cap`.
pub(crate) fn depth(value: &Value, cap: usize) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, level)) = pending.pop() {
        deepest = deepest.max(level);
        if deepest >= cap {
            return deepest;
        }
        match value {
            Value::Array(items) => pending.extend(items.iter().map(|item| (item, level + 1))),
            Value::Object(fields) => {
                pending.extend(fields.values().map(|field| (field, level + 1)))
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fuel_runs_out_and_is_restored() {
        let spent = metered(10, || (burn(6), burn(6)));
        assert_eq!(spent, (Some(()), None));
        assert_eq!(burn(u64::MAX - 1), Some(()), "unmetered outside");
    }

    #[test]
    fn time_runs_out_too() {
        let spent = metered_for(1000, Duration::ZERO, || burn(1));
        assert_eq!(spent, None, "past the deadline, fuel or not");
        let spent = metered_for(1000, Duration::from_secs(60), || (burn(6), burn(6)));
        assert_eq!(spent, (Some(()), Some(())));
        assert_eq!(burn(u64::MAX - 1), Some(()), "no deadline outside");
    }

    #[test]
    fn weight_and_depth_stop_at_their_cap() {
        let value = json!({"a": [1, 2, "xyz"], "b": {"c": null}});
        assert!(weight(&value, u64::MAX) > 20);
        let capped = weight(&value, 3);
        assert!((3..weight(&value, u64::MAX)).contains(&capped), "{capped}");
        assert_eq!(depth(&value, 10), 2);
        assert_eq!(depth(&value, 1), 1);
    }
}
