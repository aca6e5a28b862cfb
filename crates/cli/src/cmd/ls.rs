//! `lifeboat ls SNAPSHOT [PATH] [--long] [--hash]`.

use anyhow::Result;
use lifeboat_service::inventory::{ls, ls_json, ls_line};

use crate::args::LsArgs;

pub fn run(c: &super::Ctx, a: &LsArgs) -> Result<i32> {
    let mut rows = Vec::new();
    ls(&c.session, &a.snapshot, &super::filter(&a.filter), a.path.as_deref(), a.hash, &mut |e, h| match c.g.json {
        true => rows.push(ls_json(e, h)),
        false => println!("{}", ls_line(e, a.long, a.hash.then_some(h))),
    })?;
    if c.g.json {
        crate::output::json(&rows)?;
    }
    Ok(crate::exit::OK)
}
