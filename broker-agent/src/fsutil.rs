//! Small filesystem helpers for files that hold secrets.
//!
//! The agent writes passwords (engine configs, JAAS files, the persisted spec), keys and
//! the Erlang cookie; those files must never exist, even for an instant, with a looser
//! mode or owner than intended, and a crash mid-write must not leave a truncated file
//! behind. Hence [`write_atomic`]: a [`tempfile::NamedTempFile`] in the target directory
//! (created 0600), given its final mode and owner, written, fsynced and
//! [persisted](tempfile::NamedTempFile::persist) over the target by rename.

use std::io::Write;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

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
    write_atomic_with_mtime(path, contents, mode, owner, None)
}

/// [`write_atomic`], and give the new file the modification time `mtime` (set before
/// the rename, so nobody sees the new content with another mtime).
pub fn write_atomic_with_mtime(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<Owner>,
    mtime: Option<SystemTime>,
) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = (|| -> anyhow::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".berth-")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let file = tmp.as_file();
        // Exactly `mode` (the umask does not apply to fchmod).
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(o) = owner {
            std::os::unix::fs::fchown(file, Some(o.uid), Some(o.gid)).context("chown")?;
        }
        tmp.write_all(contents)?;
        tmp.as_file().sync_all()?;
        if let Some(t) = mtime {
            tmp.as_file().set_modified(t).context("setting the mtime")?;
        }
        tmp.persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("renaming into {}", path.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
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

/// Create `dir` (and parents) and give it exactly `mode` and `owner`.
pub fn ensure_dir(dir: &Path, mode: u32, owner: Option<Owner>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", dir.display()))?;
    if let Some(o) = owner {
        lchown(dir, Some(o.uid), Some(o.gid))
            .with_context(|| format!("chown {}", dir.display()))?;
    }
    Ok(())
}

/// `n` random bytes from the operating system, hex-encoded.
pub fn random_hex(n: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
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
    fn atomic_write_can_replace_a_read_only_file_and_set_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cookie");
        write_atomic(&path, b"old", 0o400, None).unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(30);
        write_atomic_with_mtime(&path, b"new", 0o400, None, Some(later)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert!(mtime > SystemTime::now() + std::time::Duration::from_secs(20));
    }

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails.
        let target = dir.path().join("taken");
        std::fs::create_dir_all(target.join("x")).unwrap();
        assert!(write_atomic(&target, b"data", 0o600, None).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("taken")]);
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
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(16).unwrap());
    }
}
