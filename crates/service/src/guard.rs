//! The gate every restore passes before it changes anything: a restore of a `protected` source,
//! or onto the source's own live data, is guarded — it needs `--force` and the source's name
//! typed back. The decision rules are in [`lifeboat_ops::guard`]; this module gathers the facts
//! (the config's source and where its live data is) and words the outcome. Asking the operator
//! is the front end's part.

use lifeboat_ops::guard::{self, Location};
pub use lifeboat_ops::guard::{confirm, Refusal};

use crate::config::Config;
use crate::error::Result;
use crate::plan::{Guarded, Plan};

/// Mark the plan guarded when its source is protected or it writes to the source's live data.
pub fn assess(config: Option<&Config>, plan: &mut Plan) -> Result<()> {
    let (Some(cfg), Some(name)) = (config, plan.source.clone()) else { return Ok(()) };
    let Ok(s) = cfg.find(&name) else { return Ok(()) };
    let live = s.source.live_location(&s.name)?;
    let reasons = match &plan.writes_to {
        Some(to) => guard::reasons(s.protected, live.as_ref(), to),
        None => guard::reasons(s.protected, None, &Location::Paths(Vec::new())),
    };
    if !reasons.is_empty() {
        plan.guarded = Some(Guarded { reasons, rerun_with: format!("--force --confirm {name}") });
    }
    Ok(())
}

/// Why a restore is guarded, in words (`the source is protected and …`).
pub fn reasons(guarded: &Guarded) -> String {
    let r: Vec<String> = guarded.reasons.iter().map(ToString::to_string).collect();
    r.join(" and ")
}

/// The one-line refusal: what would have happened, why it is guarded, how to go ahead.
pub fn refusal(plan: &Plan, guarded: &Guarded, name: &str, r: &Refusal) -> String {
    let how = match r {
        Refusal::NoForce | Refusal::NoConfirmation => format!("rerun with --force --confirm {name}"),
        Refusal::Mismatch { given } => {
            format!("the confirmation {given:?} does not match the source name; rerun with --force --confirm {name}")
        }
    };
    format!("refused: {}; it is guarded because {}; nothing was changed; {how}", plan.summary(), reasons(guarded))
}

/// The audit event of a restore about to run: `restore`, or `restore (guarded)` with why it was
/// guarded when the operator confirmed a guarded one.
pub fn event(plan: &Plan) -> lifeboat_ops::audit::Event {
    let mut details = serde_json::json!({ "kind": plan.kind, "target": plan.target, "plan": plan.summary() });
    let action = match &plan.guarded {
        Some(g) => {
            details["reasons"] = serde_json::json!(g.reasons);
            "restore (guarded)"
        }
        None => "restore",
    };
    lifeboat_ops::audit::Event::new(action, details).about(plan.source.as_deref(), Some(plan.snapshot.to_hex()))
}
