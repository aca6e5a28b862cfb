//! `${VAR}` in config values: replaced from the environment when the value is used, so secrets
//! never sit in the file, in argv or in snapshot metadata.

use crate::error::{Context as _, Result};

/// Replace `${VAR}` with the environment variable's value; a missing variable is an error that
/// names it (never its value).
pub fn substitute(text: &str, what: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').with_context(|| {
            format!("{what}: a ${{ without its closing }} (the value is not shown: it may hold a secret)")
        })?;
        let var = &after[..end];
        let value =
            std::env::var(var).ok().with_context(|| format!("{what}: environment variable {var} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
