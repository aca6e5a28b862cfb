//! `lifeboat man [--dir DIR]`: the top page on stdout, or a page for every command and
//! subcommand (`lifeboat-backup.1`, `lifeboat-storage-lock.1`, …) written into a directory.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use crate::args::Cli;

/// Print the top page, or write every page into `dir`.
pub fn write(dir: Option<&Path>) -> Result<i32> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(crate::exit::OK);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = 0;
    let mut stack = vec![("lifeboat".to_string(), cmd)];
    while let Some((name, mut c)) = stack.pop() {
        // clap names are &'static str without its `string` feature; a few short names leak once.
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        c = c.name(static_name).display_name(name.replace('-', " "));
        for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
            stack.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(c).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    println!("wrote {written} man pages to {}", dir.display());
    Ok(crate::exit::OK)
}
