//! An SSH server for the tests: Debian's `openssh-server` (`/usr/sbin/sshd`, installed by
//! `.ci/run`) run by the test on a free loopback port with a throwaway host key, a user key,
//! `authorized_keys` and a `known_hosts` in a temporary directory, stopped when dropped.
//!
//! [`SftpServer::start`] returns `None` (after printing why) when `sshd` or `ssh` is missing;
//! in CI (`CI` set) it panics instead. Included with `#[path = "…"] mod sftp_server;` from the
//! backend and CLI tests (next to `rest_server.rs`, whose helpers it uses).

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::rest_server::{free_port, have, missing};

/// A running `sshd`.
pub struct SftpServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The user the tests log in as (the one running them).
    pub user: String,
    dir: tempfile::TempDir,
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "lifeboat-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(ok.success(), "ssh-keygen failed");
}

impl SftpServer {
    /// Starts `sshd`, or `None` when it is not installed (outside CI).
    pub fn start() -> Option<SftpServer> {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].into_iter().find(|p| Path::new(p).exists());
        let Some(sshd) = sshd.filter(|_| have("ssh") && have("ssh-keygen")) else {
            missing("openssh-server (sshd) or the ssh client is not installed: the SFTP tests need them");
            return None;
        };
        let sftp_server = ["/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("internal-sftp");
        let dir = tempfile::Builder::new().prefix("lifeboat-sshd-").tempdir().expect("tempdir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("id"));
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
            .expect("utf-8")
            .trim()
            .to_owned();
        // As root, sshd wants its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        for _ in 0..5 {
            let port = free_port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
                 UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nSubsystem sftp {sftp_server}\n\
                 LogLevel ERROR\nMaxStartups 100\nMaxSessions 100\n",
                hk = d.join("host_key").display(),
                ak = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            );
            std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
            let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("host key");
            let mut parts = host_pub.split_whitespace();
            let (kind, key) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {kind} {key}\n")).expect("known_hosts");
            let mut child = Command::new(sshd)
                .arg("-f")
                .arg(d.join("sshd_config"))
                .args(["-D", "-e"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sshd");
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(SftpServer { child, port, user, dir });
                }
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start");
    }

    /// The temporary directory (keys, config; repositories may go below it too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh absolute directory for a repository (not created).
    pub fn repo_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("repos").join(name)
    }

    /// `sftp://USER@127.0.0.1:PORT//ABSOLUTE/PATH` for `repo_dir(name)`.
    pub fn url(&self, name: &str) -> String {
        format!("sftp://{}@127.0.0.1:{}/{}", self.user, self.port, self.repo_dir(name).display())
    }

    /// The `ssh` arguments (key, known_hosts, no user config) for `LIFEBOAT_SFTP_ARGS`.
    pub fn ssh_args(&self) -> String {
        format!(
            "-F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
            self.dir().join("id").display(),
            self.dir().join("known_hosts").display()
        )
    }

    /// The whole command for restic's `-o sftp.command=`.
    pub fn restic_command(&self) -> String {
        format!("ssh {} -o BatchMode=yes -p {} -l {} 127.0.0.1 -s sftp", self.ssh_args(), self.port, self.user)
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
