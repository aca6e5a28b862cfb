//! The Azure Blob Storage backend, through OpenDAL (`services-azblob`).
//!
//! # Repository URLs
//!
//! `azure:CONTAINER:/PATH` (restic's form); the path is a prefix inside the container.
//!
//! # Credentials and endpoint
//!
//! [`AzureOptions`] (from `[repository] azure` in the config) or restic's variables
//! `AZURE_ACCOUNT_NAME` and `AZURE_ACCOUNT_KEY` (or `AZURE_ACCOUNT_SAS` for a SAS token). The
//! endpoint is `https://ACCOUNT.blob.core.windows.net`, with restic's `AZURE_ENDPOINT_SUFFIX`
//! replacing `core.windows.net`; `AZURE_ENDPOINT` (Lifeboat's own) gives the whole endpoint,
//! e.g. `http://127.0.0.1:10000/devstoreaccount1` for the Azurite emulator. Keys never appear
//! in messages.
//!
//! # Containers
//!
//! `init` creates a missing container (as restic does); other commands on a missing
//! container fail with one line saying so.

use std::fmt;

use opendal::layers::{HttpClientLayer, TimeoutLayer};
use opendal::raw::HttpClient;
use opendal::Operator;

use crate::error::{BackendError, ErrorContext, Op};
use crate::object_store::{describe, OpendalBackend, Service};
use crate::Result;

/// Settings that do not belong in the URL.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AzureOptions {
    /// Storage account name (`AZURE_ACCOUNT_NAME`).
    pub account_name: Option<String>,
    /// Storage account key (`AZURE_ACCOUNT_KEY`).
    pub account_key: Option<String>,
    /// SAS token instead of the key (`AZURE_ACCOUNT_SAS`).
    pub sas_token: Option<String>,
    /// The whole blob endpoint (`AZURE_ENDPOINT`), e.g. for Azurite.
    pub endpoint: Option<String>,
    /// Endpoint suffix (`AZURE_ENDPOINT_SUFFIX`, default `core.windows.net`).
    pub endpoint_suffix: Option<String>,
}

impl fmt::Debug for AzureOptions {
    /// Never shows the key or the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| if v.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("AzureOptions")
            .field("account_name", &self.account_name)
            .field("account_key", &set(&self.account_key))
            .field("sas_token", &set(&self.sas_token))
            .field("endpoint", &self.endpoint)
            .field("endpoint_suffix", &self.endpoint_suffix)
            .finish()
    }
}

impl AzureOptions {
    /// The options the environment gives (restic's `AZURE_*` variables, plus
    /// `AZURE_ENDPOINT`).
    pub fn from_env() -> Self {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        AzureOptions {
            account_name: get("AZURE_ACCOUNT_NAME"),
            account_key: get("AZURE_ACCOUNT_KEY"),
            sas_token: get("AZURE_ACCOUNT_SAS"),
            endpoint: get("AZURE_ENDPOINT"),
            endpoint_suffix: get("AZURE_ENDPOINT_SUFFIX"),
        }
    }

    /// These options, with unset fields taken from `fallback`; the credentials (name, key,
    /// token) as a group.
    pub fn or(self, fallback: AzureOptions) -> Self {
        let creds = self.account_name.is_some();
        AzureOptions {
            account_name: if creds { self.account_name } else { fallback.account_name },
            account_key: if creds { self.account_key } else { fallback.account_key },
            sas_token: if creds { self.sas_token } else { fallback.sas_token },
            endpoint: self.endpoint.or(fallback.endpoint),
            endpoint_suffix: self.endpoint_suffix.or(fallback.endpoint_suffix),
        }
    }
}

/// `azure:CONTAINER:/PATH` → (container, prefix).
fn parse_url(url: &str) -> std::result::Result<(String, String), String> {
    let rest = url.strip_prefix("azure:").ok_or("not an Azure URL (expected azure:CONTAINER:/PATH)")?;
    let (container, path) = rest.split_once(':').unwrap_or((rest, ""));
    if container.is_empty()
        || container.len() > 63
        || !container.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "invalid container name {container:?}: 3-63 lowercase letters, digits and '-' (azure:CONTAINER:/PATH)"
        ));
    }
    let path = path.trim_matches('/');
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err("the path must not contain '.' or '..' components".to_owned());
    }
    Ok((container.to_owned(), path.to_owned()))
}

/// A repository in an Azure Blob container at `url` (`azure:CONTAINER:/PATH`). Does not
/// contact the service; fails ([`Op::Open`]) for a malformed URL or missing credentials.
pub fn open(url: &str, options: &AzureOptions) -> Result<OpendalBackend> {
    let fail = |location: String, message: String| {
        BackendError::other(ErrorContext::new(location, Op::Open, None, ""), message, false)
    };
    let (container, prefix) = parse_url(url).map_err(|m| fail(url.to_owned(), m))?;
    let location = format!("azure:{container}:/{prefix}");
    let fail = |m: String| fail(location.clone(), m);
    let Some(account) = options.account_name.clone() else {
        return Err(fail(
            "no Azure account: set AZURE_ACCOUNT_NAME and AZURE_ACCOUNT_KEY (or [repository] azure)".into(),
        ));
    };
    if options.account_key.is_none() && options.sas_token.is_none() {
        return Err(fail("no Azure account key: set AZURE_ACCOUNT_KEY (or AZURE_ACCOUNT_SAS)".into()));
    }
    let endpoint = match &options.endpoint {
        Some(e) if e.starts_with("http://") || e.starts_with("https://") => e.trim_end_matches('/').to_owned(),
        Some(e) => return Err(fail(format!("AZURE_ENDPOINT {e:?} must start with http:// or https://"))),
        None => format!(
            "https://{account}.blob.{}",
            options.endpoint_suffix.as_deref().unwrap_or("core.windows.net").trim_matches('.')
        ),
    };
    let mut builder = opendal::services::Azblob::default()
        .container(&container)
        .root(&format!("/{prefix}"))
        .endpoint(&endpoint)
        .account_name(&account);
    if let Some(k) = &options.account_key {
        builder = builder.account_key(k);
    } else if let Some(t) = &options.sas_token {
        builder = builder.sas_token(t);
    }
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| fail(format!("cannot set up the HTTP client: {e}")))?;
    let op = Operator::new(builder)
        .map_err(|e| fail(format!("invalid Azure settings: {}", describe(&e))))?
        .layer(HttpClientLayer::new(HttpClient::with(http.clone())))
        .layer(
            TimeoutLayer::new()
                .with_timeout(std::time::Duration::from_secs(120))
                .with_io_timeout(std::time::Duration::from_secs(120)),
        )
        .finish();
    let key = options.account_key.clone();
    let url = format!("{endpoint}/{container}?restype=container");
    let hook_location = location.clone();
    let backend = OpendalBackend::new(op, location, Service::Azure, container)?;
    Ok(backend.on_create(move || create_container(&http, &url, &account, key.as_deref(), &hook_location)))
}

/// Creates the container if it is missing (`PUT ?restype=container`, signed with the key).
fn create_container(
    http: &reqwest::Client,
    url: &str,
    account: &str,
    key: Option<&str>,
    location: &str,
) -> std::result::Result<(), String> {
    let Some(key) = key else { return Ok(()) };
    let bridge = crate::bridge::Bridge::new("azure-create")?;
    let cred = reqsign::AzureStorageCredential::SharedKey(account.to_owned(), key.to_owned());
    bridge.block_on(async {
        let mut req = http
            .put(url)
            .header("x-ms-version", "2021-08-06")
            .header("content-length", "0")
            .build()
            .map_err(|e| format!("cannot build the request: {e}"))?;
        reqsign::AzureStorageSigner::new()
            .sign(&mut req, &cred)
            .map_err(|e| format!("cannot sign the request: {e}"))?;
        let resp = http.execute(req).await.map_err(|e| {
            let mut cur: &dyn std::error::Error = &e;
            while let Some(next) = cur.source() {
                cur = next;
            }
            format!("cannot reach the Azure Blob endpoint: {cur}")
        })?;
        match resp.status().as_u16() {
            201 | 409 => Ok(()),
            403 => Err(format!(
                "{location}: Azure Blob refused access (HTTP 403): check AZURE_ACCOUNT_NAME and AZURE_ACCOUNT_KEY"
            )),
            s => Err(format!("cannot create the container (HTTP {s})")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse_url("azure:backups:/lifeboat/repo/").expect("url"),
            ("backups".into(), "lifeboat/repo".into())
        );
        assert_eq!(parse_url("azure:backups:").expect("url"), ("backups".into(), String::new()));
        assert!(parse_url("azure:Bad_Name:/x").expect_err("bad").contains("invalid container"));
        let e = open("azure:c:/p", &AzureOptions::default()).expect_err("no account").to_string();
        assert!(e.contains("AZURE_ACCOUNT_NAME"), "{e}");
        let o = AzureOptions {
            account_name: Some("a".into()),
            account_key: Some("S3cr3tKey".into()),
            ..Default::default()
        };
        assert!(!format!("{o:?}").contains("S3cr3tKey"));
        let e = open("azure:c:/p", &o).expect_err("not base64").to_string();
        assert!(e.contains("base64") && !e.contains("S3cr3tKey"), "{e}");
        let o = AzureOptions { account_key: Some("UzNjcjN0S2V5".into()), ..o };
        let b = open("azure:c:/p", &o).expect("open");
        use crate::Backend as _;
        assert_eq!(b.location(), "azure:c:/p");
    }
}
