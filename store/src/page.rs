//! One page of a newest-first list, read with `LIMIT first + 1` to learn whether more follow.

use serde::Serialize;

/// A page of results.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Whether items older than the last one exist.
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// The row limit to query for a page of `first` items.
    pub(crate) fn limit(first: u64) -> u64 {
        clamp(first) + 1
    }

    /// A page from rows read with [`Page::limit`].
    pub(crate) fn from_rows(mut rows: Vec<T>, first: u64) -> Self {
        let first = usize::try_from(clamp(first)).unwrap_or(usize::MAX);
        let has_next_page = rows.len() > first;
        rows.truncate(first);
        Self {
            items: rows,
            has_next_page,
        }
    }
}

/// Page sizes beyond what a signed 64-bit `LIMIT` (PostgreSQL's) can express mean "all".
pub(crate) fn clamp(first: u64) -> u64 {
    first.min(i64::MAX as u64 - 1)
}
