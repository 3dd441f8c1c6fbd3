//! Drift: the twin made to differ from what the runbooks were written against, as a
//! production system drifts (a column renamed, an endpoint moved, a JSON field
//! renamed), so that `drill check` can be shown finding it. Off by default; turned on
//! by the `drift` chaos switch, `{"column": true, "endpoint": true, "field": true}`:
//!
//! - **column**: `data_quality_scores.created_at` is `scored_at` (the harness renames
//!   the column; the twin's writers use the new name);
//! - **endpoint**: dlq-manager's `/dlq/errors/grouped` moved to `/dlq/errors/by-type`;
//! - **field**: `/dlq/stats` says `message_count` for `total_messages`.
//!
//! The twin's services each keep their own setting; a chaos reset turns it off.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

static COLUMN: AtomicBool = AtomicBool::new(false);
static ENDPOINT: AtomicBool = AtomicBool::new(false);
static FIELD: AtomicBool = AtomicBool::new(false);

/// Where `/dlq/errors/grouped` is, drifted.
pub const MOVED_ERRORS_GROUPED: &str = "/dlq/errors/by-type";
/// `total_messages`, drifted.
pub const RENAMED_TOTAL_MESSAGES: &str = "message_count";

/// Sets the drift from the switch's parameters (`None`: the switch is off).
pub fn apply(params: Option<&Value>) {
    let on = |name: &str| {
        params
            .and_then(|p| p.get(name))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    COLUMN.store(on("column"), Ordering::Relaxed);
    ENDPOINT.store(on("endpoint"), Ordering::Relaxed);
    FIELD.store(on("field"), Ordering::Relaxed);
}

/// The name of `data_quality_scores`' time column.
pub fn quality_time_column() -> &'static str {
    if COLUMN.load(Ordering::Relaxed) {
        "scored_at"
    } else {
        "created_at"
    }
}

pub fn endpoint_moved() -> bool {
    ENDPOINT.load(Ordering::Relaxed)
}

pub fn field_renamed() -> bool {
    FIELD.load(Ordering::Relaxed)
}
