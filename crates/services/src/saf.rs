//! The store-and-forward queue as operators work it: what is queued, and the two things
//! a person may do to an entry — send it again now (an exception put back in the
//! queue, due at once), or close it as settled by hand (the issuer confirmed it another
//! way; it is no longer repeated). Both leave an audit record.

use store::{Backend, SafRow, SafState, Write};

use crate::accounts::Actor;
use crate::{Context, Result, ServiceError};

/// An entry as the API and the audit trail show it: never the stored message.
pub fn saf_json(s: &SafRow) -> serde_json::Value {
    serde_json::json!({
        "saf_id": s.saf_id,
        "txn_id": s.txn_id,
        "kind": s.kind,
        "state": s.state.name(),
        "attempts": s.attempts,
        "next_at_ms": s.next_at_ms,
        "reason": s.reason,
        "owner": s.owner,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

fn find(db: &mut dyn Backend, saf_id: i64) -> Result<SafRow> {
    db.saf_entry(saf_id)
        .ctx("read queue")?
        .ok_or_else(|| ServiceError::NotFound(format!("no queue entry {saf_id}")))
}

/// Puts an exception back in the queue, due at `now_ms`: the acquirer nodes send it
/// on their next sweep. A pending entry is already being sent: nothing changes and
/// nothing is recorded. A done entry cannot be sent again.
pub fn retry(
    db: &mut dyn Backend,
    saf_id: i64,
    now_ms: i64,
    actor: &Actor,
    at: &str,
) -> Result<SafRow> {
    let before = find(db, saf_id)?;
    match before.state {
        SafState::Pending => return Ok(before),
        SafState::Done => {
            return Err(ServiceError::Conflict(format!(
                "queue entry {saf_id} is done: the issuer answered it"
            )))
        }
        SafState::Exception => {}
    }
    let after = SafRow {
        state: SafState::Pending,
        next_at_ms: now_ms,
        owner: None,
        reason: format!("{}; sent again by {} at {at}", before.reason, actor.name),
        updated_at: at.into(),
        ..before.clone()
    };
    db.apply(&[
        Write::Saf(after.clone()),
        actor.audit(
            at,
            "saf.retry",
            &format!("saf:{saf_id}"),
            saf_json(&before),
            saf_json(&after),
        ),
    ])
    .ctx("write queue")?;
    Ok(after)
}

/// Closes an entry as settled by hand, with a note saying how; it is no longer sent.
/// A done entry stays as it is and nothing is recorded.
pub fn resolve(
    db: &mut dyn Backend,
    saf_id: i64,
    note: &str,
    actor: &Actor,
    at: &str,
) -> Result<SafRow> {
    crate::text("a resolution note", note, 2000)?;
    let before = find(db, saf_id)?;
    if before.state == SafState::Done {
        return Ok(before);
    }
    let after = SafRow {
        state: SafState::Done,
        owner: Some(actor.name.clone()),
        reason: format!(
            "{}; resolved by hand by {} at {at}: {note}",
            before.reason, actor.name
        ),
        updated_at: at.into(),
        ..before.clone()
    };
    db.apply(&[
        Write::Saf(after.clone()),
        actor.audit(
            at,
            "saf.resolve",
            &format!("saf:{saf_id}"),
            saf_json(&before),
            saf_json(&after),
        ),
    ])
    .ctx("write queue")?;
    Ok(after)
}
