//! The Google Cloud Storage backend, through OpenDAL (`services-gcs`).
//!
//! # Repository URLs
//!
//! `gs:BUCKET:/PATH` (restic's form); the path is a prefix inside the bucket.
//!
//! # Credentials and endpoint
//!
//! A service-account JSON key named by `GOOGLE_APPLICATION_CREDENTIALS` (as restic and the
//! Google tools read it) or by [`GcsOptions::credentials`] (`[repository] gcs credentials`), or
//! an OAuth token in `GOOGLE_ACCESS_TOKEN` (restic's variable). Without either, requests go
//! unauthenticated (emulators, public buckets). [`GcsOptions::endpoint`] (`GCS_ENDPOINT`,
//! Lifeboat's own) replaces `https://storage.googleapis.com`, e.g. for fake-gcs-server. The
//! VM metadata server is never asked.
//!
//! # Buckets
//!
//! Lifeboat does not create buckets (that needs a project and a location): a missing bucket
//! holds no repository (exit 10), and writing to it fails with one line naming it.

use opendal::layers::{HttpClientLayer, TimeoutLayer};
use opendal::raw::HttpClient;
use opendal::Operator;

use crate::error::{BackendError, ErrorContext, Op};
use crate::object_store::{describe, OpendalBackend, Service};
use crate::Result;

/// Settings that do not belong in the URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcsOptions {
    /// Path of a service-account JSON key (`GOOGLE_APPLICATION_CREDENTIALS`).
    pub credentials: Option<String>,
    /// An OAuth access token instead (`GOOGLE_ACCESS_TOKEN`); shown as `<set>` only.
    pub access_token: Option<String>,
    /// The endpoint instead of `https://storage.googleapis.com` (`GCS_ENDPOINT`).
    pub endpoint: Option<String>,
}

impl GcsOptions {
    /// The options the environment gives.
    pub fn from_env() -> Self {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        GcsOptions {
            credentials: get("GOOGLE_APPLICATION_CREDENTIALS"),
            access_token: get("GOOGLE_ACCESS_TOKEN"),
            endpoint: get("GCS_ENDPOINT"),
        }
    }

    /// These options, with unset fields taken from `fallback`.
    pub fn or(self, fallback: GcsOptions) -> Self {
        let own_creds = self.credentials.is_some() || self.access_token.is_some();
        GcsOptions {
            credentials: if own_creds { self.credentials } else { fallback.credentials },
            access_token: if own_creds { self.access_token } else { fallback.access_token },
            endpoint: self.endpoint.or(fallback.endpoint),
        }
    }
}

/// `gs:BUCKET:/PATH` → (bucket, prefix).
fn parse_url(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url.strip_prefix("gs:").ok_or("not a GCS URL (expected gs:BUCKET:/PATH)")?;
    let (bucket, path) = rest.split_once(':').unwrap_or((rest, ""));
    if bucket.len() < 3
        || bucket.len() > 222
        || !bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
    {
        return Err(format!(
            "invalid bucket name {bucket:?}: lowercase letters, digits, '-', '_' and '.' (gs:BUCKET:/PATH)"
        ));
    }
    let path = path.trim_matches('/');
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err("the path must not contain '.' or '..' components".to_owned());
    }
    Ok((bucket.to_owned(), path.to_owned()))
}

/// A repository in a GCS bucket at `url` (`gs:BUCKET:/PATH`). Does not contact the service;
/// fails ([`Op::Open`]) for a malformed URL or endpoint, or an unreadable credentials file.
pub fn open(url: &str, options: &GcsOptions) -> Result<OpendalBackend> {
    let fail = |location: String, message: String| {
        BackendError::other(ErrorContext::new(location, Op::Open, None, ""), message, false)
    };
    let (bucket, prefix) = parse_url(url).map_err(|m| fail(url.to_owned(), m))?;
    let location = format!("gs:{bucket}:/{prefix}");
    let fail = |m: String| fail(location.clone(), m);
    let mut builder = opendal::services::Gcs::default()
        .bucket(&bucket)
        .root(&format!("/{prefix}"))
        .disable_vm_metadata()
        .disable_config_load();
    if let Some(e) = &options.endpoint {
        if !e.starts_with("http://") && !e.starts_with("https://") {
            return Err(fail(format!("GCS_ENDPOINT {e:?} must start with http:// or https://")));
        }
        builder = builder.endpoint(e.trim_end_matches('/'));
    }
    match (&options.credentials, &options.access_token) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| fail(format!("GOOGLE_APPLICATION_CREDENTIALS: cannot read {path}: {e}")))?;
            use base64::Engine as _;
            builder = builder.credential(&base64::engine::general_purpose::STANDARD.encode(text));
        }
        (None, Some(token)) => builder = builder.token(token.clone()),
        (None, None) => builder = builder.allow_anonymous(),
    }
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| fail(format!("cannot set up the HTTP client: {e}")))?;
    let op = Operator::new(builder)
        .map_err(|e| fail(format!("invalid GCS settings: {}", describe(&e))))?
        .layer(HttpClientLayer::new(HttpClient::with(http)))
        .layer(
            TimeoutLayer::new()
                .with_timeout(std::time::Duration::from_secs(120))
                .with_io_timeout(std::time::Duration::from_secs(120)),
        )
        .finish();
    OpendalBackend::new(op, location, Service::Gcs, bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_checks_options() {
        assert_eq!(parse_url("gs:backups:/lifeboat/").expect("url"), ("backups".into(), "lifeboat".into()));
        assert!(parse_url("gs:B:/x").expect_err("bad").contains("invalid bucket"));
        let e =
            open("gs:backups:/x", &GcsOptions { credentials: Some("/nonexistent.json".into()), ..Default::default() })
                .expect_err("missing file")
                .to_string();
        assert!(e.contains("GOOGLE_APPLICATION_CREDENTIALS: cannot read /nonexistent.json"), "{e}");
        let o = GcsOptions { access_token: Some("t".into()), ..Default::default() };
        assert_eq!(o.clone().or(GcsOptions { credentials: Some("f".into()), ..Default::default() }), o);
    }
}
