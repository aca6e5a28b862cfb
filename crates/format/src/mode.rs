//! Conversion between Unix `st_mode` and Go's `os.FileMode`, which restic stores in trees.

/// Go `os.ModeDir`.
pub const GO_MODE_DIR: u32 = 1 << 31;
/// Go `os.ModeSymlink`.
pub const GO_MODE_SYMLINK: u32 = 1 << 27;
/// Go `os.ModeDevice`.
pub const GO_MODE_DEVICE: u32 = 1 << 26;
/// Go `os.ModeNamedPipe`.
pub const GO_MODE_NAMED_PIPE: u32 = 1 << 25;
/// Go `os.ModeSocket`.
pub const GO_MODE_SOCKET: u32 = 1 << 24;
/// Go `os.ModeSetuid`.
pub const GO_MODE_SETUID: u32 = 1 << 23;
/// Go `os.ModeSetgid`.
pub const GO_MODE_SETGID: u32 = 1 << 22;
/// Go `os.ModeCharDevice`.
pub const GO_MODE_CHAR_DEVICE: u32 = 1 << 21;
/// Go `os.ModeSticky`.
pub const GO_MODE_STICKY: u32 = 1 << 20;

const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFLNK: u32 = 0o120000;
const S_IFBLK: u32 = 0o060000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;
const S_IFSOCK: u32 = 0o140000;

/// Go file mode for a Unix `st_mode`.
pub fn go_mode_from_unix(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match st_mode & S_IFMT {
        S_IFDIR => GO_MODE_DIR,
        S_IFLNK => GO_MODE_SYMLINK,
        S_IFBLK => GO_MODE_DEVICE,
        S_IFCHR => GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE,
        S_IFIFO => GO_MODE_NAMED_PIPE,
        S_IFSOCK => GO_MODE_SOCKET,
        _ => 0,
    };
    if st_mode & 0o4000 != 0 {
        m |= GO_MODE_SETUID;
    }
    if st_mode & 0o2000 != 0 {
        m |= GO_MODE_SETGID;
    }
    if st_mode & 0o1000 != 0 {
        m |= GO_MODE_STICKY;
    }
    m
}

/// Unix permission bits (including setuid/setgid/sticky) of a Go file mode.
pub fn unix_permissions_from_go(go_mode: u32) -> u32 {
    let mut m = go_mode & 0o777;
    if go_mode & GO_MODE_SETUID != 0 {
        m |= 0o4000;
    }
    if go_mode & GO_MODE_SETGID != 0 {
        m |= 0o2000;
    }
    if go_mode & GO_MODE_STICKY != 0 {
        m |= 0o1000;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // restic writes 2147484141 for a 0755 directory and 420 for a 0644 file.
        assert_eq!(go_mode_from_unix(S_IFDIR | 0o755), 2147484141);
        assert_eq!(go_mode_from_unix(0o100644), 420);
        assert_eq!(go_mode_from_unix(S_IFLNK | 0o777), 134218239);
        assert_eq!(unix_permissions_from_go(go_mode_from_unix(0o104755)), 0o4755);
        assert_eq!(unix_permissions_from_go(go_mode_from_unix(S_IFDIR | 0o1777)), 0o1777);
    }
}
