//! Small filesystem helpers for files that hold secrets.
//!
//! The agent writes passwords (rabbitmq.conf, the persisted spec) and the Erlang cookie;
//! those files must never exist, even for an instant, with a looser mode or owner than
//! intended, and a crash mid-write must not leave a truncated file behind. Hence: create a
//! temporary file with the final mode, chown it, write, fsync, rename over the target.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{lchown, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Numeric owner for files the agent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The user `name` and its primary group.
    pub fn lookup_user(name: &str) -> anyhow::Result<Owner> {
        let user = nix::unistd::User::from_name(name)
            .with_context(|| format!("looking up user {name}"))?
            .with_context(|| format!("user {name} does not exist"))?;
        Ok(Owner {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    /// The owner of the running process (used by tests).
    pub fn current() -> Owner {
        Owner {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }
}

/// Atomically replace `path` with `contents`, created with `mode` and owned by `owner`.
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Owner>,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file_name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.berth-tmp", file_name.to_string_lossy()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| -> anyhow::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        // The umask may have narrowed the mode; set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(o) = owner {
            std::os::unix::fs::fchown(&file, Some(o.uid), Some(o.gid))
                .with_context(|| format!("chown {}", tmp.display()))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// `chown -R` without following symlinks.
pub fn chown_recursive(path: &Path, owner: Owner) -> anyhow::Result<()> {
    lchown(path, Some(owner.uid), Some(owner.gid))
        .with_context(|| format!("chown {}", path.display()))?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
        {
            chown_recursive(&entry?.path(), owner)?;
        }
    }
    Ok(())
}

/// `n` random bytes from the kernel, hex-encoded.
pub fn random_hex(n: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/secret.json");
        write_atomic(&path, b"one", 0o600, Some(Owner::current())).unwrap();
        write_atomic(&path, b"two", 0o640, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o640);
        // no temp file left behind
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn chown_recursive_walks_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("a/link")).unwrap();
        chown_recursive(dir.path(), Owner::current()).unwrap();
    }

    #[test]
    fn random_hex_has_length() {
        let a = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_hex(16).unwrap());
    }
}
