//! Restoring a snapshot: its kind's plan first, then the gate (a dry run stops there; a guarded
//! restore needs the front end's confirmation and is recorded in the audit log), then the work.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::Result;
use crate::filter::{find_snapshot, FilterSpec};
use crate::guard;
use crate::kinds::{RestoreRequest, Restored, RunContext};
use crate::plan::Plan;
use crate::progress::{Event, Observer};
use crate::session::{one_line, Session};

/// What the front end decided after seeing the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Restore.
    Go,
    /// Stop without changing anything (a dry run, or a guarded restore not confirmed).
    Stop,
}

/// Restore the snapshot `reference` (among those `spec` passes) as `req` asks. `decide` sees
/// the plan (with [`Plan::guarded`] set when the restore is guarded) and says whether to go on;
/// `None` when it stopped.
pub fn restore(
    session: &Session,
    reference: &str,
    spec: &FilterSpec,
    req: &RestoreRequest,
    decide: &mut dyn FnMut(&Plan) -> Result<Decision>,
    interrupt: &Arc<AtomicBool>,
    observer: &Arc<Observer>,
) -> Result<Option<Restored>> {
    let repo = session.open()?;
    let _lock = session.lock_read_only(&repo, observer.as_ref())?;
    let snap = find_snapshot(&repo, reference, spec)?;
    let cfg = session.config()?;
    let resolved = crate::config::source_for(cfg.as_deref(), &snap)?;
    let prepared = resolved.source().prepare_restore(&resolved.name, &repo, &snap, req)?;
    let mut plan = prepared.plan;
    guard::assess(cfg.as_deref(), &mut plan)?;
    if decide(&plan)? == Decision::Stop {
        return Ok(None);
    }
    if let Some(g) = &plan.guarded {
        if let Err(e) = guard::record(&repo, &plan, g) {
            observer(&Event::Warning {
                message: format!("the guarded restore could not be recorded in the audit log: {}", one_line(&e)),
            });
        }
    }
    let ctx = RunContext { interrupt: Some(interrupt.clone()), observer: observer.clone() };
    (prepared.run)(&ctx).map(Some)
}
