//! Optional TLS for the HTTP server (`[server] tls_cert` and `tls_key`, PEM files), with rustls.
//!
//! The certificate and key are read at start (a bad pair fails the start with one line) and read
//! again when either file's modification time changes, so a renewed certificate (certbot,
//! cert-manager) is served without a restart; a renewal that does not parse keeps the old pair.
//! Handshakes run in their own tasks with a time limit, so a client that connects and says
//! nothing cannot hold up the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate and key files, re-read when they change.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamp: (Option<SystemTime>, Option<SystemTime>),
    key: Arc<CertifiedKey>,
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Read a certificate chain and its private key (PEM) into what rustls serves.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("[server] tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("[server] tls_cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("[server] tls_cert {}: no PEM certificate in the file", cert.display()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("[server] tls_key {}: {e}", key.display()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| format!("[server] tls_key {}: {e}", key.display()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| {
        format!("[server] tls_key {} does not belong to the certificate in {}: {e}", key.display(), cert.display())
    })?;
    Ok(pair)
}

impl CertFiles {
    /// Load the pair now (errors are one line naming the file).
    pub fn open(cert: PathBuf, key: PathBuf) -> Result<Self, String> {
        let stamp = (mtime(&cert), mtime(&key));
        let pair = load_pair(&cert, &key)?;
        Ok(CertFiles { cert, key, current: Mutex::new(Loaded { stamp, key: Arc::new(pair) }) })
    }

    /// The pair to serve: re-read when a file changed; the old pair when the new one is bad.
    fn get(&self) -> Option<Arc<CertifiedKey>> {
        let mut cur = self.current.lock().ok()?;
        let stamp = (mtime(&self.cert), mtime(&self.key));
        if stamp != cur.stamp {
            // Remember the stamp either way: a bad renewal is not re-parsed on every handshake.
            cur.stamp = stamp;
            if let Ok(pair) = load_pair(&self.cert, &self.key) {
                cur.key = Arc::new(pair);
            }
        }
        Some(cur.key.clone())
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get()
    }
}

/// A listener that hands axum connections whose TLS handshake has finished.
pub struct Listener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl Listener {
    /// Accept on `tcp`, handshaking with `files`' certificate. Call inside the runtime.
    pub fn new(tcp: TcpListener, files: Arc<CertFiles>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(files);
        let mut config = config;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    // Out of descriptors and the like: back off rather than spin.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(Listener { rx, local })
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(conn) = self.rx.recv().await {
                return conn;
            }
            // The accept task ended (the runtime is going down): never hand out anything again.
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
