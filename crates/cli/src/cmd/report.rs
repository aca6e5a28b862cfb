//! `lifeboat report [--week|--month|--since TIME] [--html FILE] [--source NAME…]`: the service's
//! report as a table or JSON, and as an HTML file.

use anyhow::Result;
use lifeboat_service::report::{self, PeriodSpec, Request};

use super::Ctx;
use crate::args::ReportArgs;
use crate::{exit, output};

/// Run `report`.
pub fn run(c: &Ctx, a: &ReportArgs) -> Result<i32> {
    if let Some(path) = &a.html {
        report::check_html_path(path)?;
    }
    let period = PeriodSpec { week: a.week, month: a.month, since: a.since.clone() };
    let r = report::report(&c.session, &Request { period, sources: a.sources.clone() })?;
    if let Some(path) = &a.html {
        report::write_html(&r, path)?;
    }
    output::show(c.g, &r, || {
        report::text_lines(&r).iter().for_each(|l| println!("{l}"));
        if let Some(path) = &a.html {
            println!("\nwrote {}", path.display());
        }
    })?;
    Ok(exit::OK)
}
