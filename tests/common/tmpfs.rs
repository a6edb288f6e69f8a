//! A tmpfs mounted for one test (root only), for a disk that fills up or
//! turns read-only under a store.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted for one test, unmounted on drop. The tests that mount
/// one run one at a time: a `mount` process started by one test could
/// inherit a file another test has just opened for writing (LMDB marks its
/// descriptors close-on-exec only after opening them), and a remount
/// read-only then fails while that process lives.
pub struct Tmpfs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static MOUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Tmpfs {
    pub fn mount(options: &str) -> Option<Tmpfs> {
        if !is_root() {
            println!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let one_at_a_time = MOUNTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("fs");
        std::fs::create_dir(&mount).unwrap();
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(&mount).status();
        if !mounted.is_ok_and(|status| status.success()) {
            println!("skipped: cannot mount a tmpfs here");
            return None;
        }
        Some(Tmpfs { _dir: dir, mount, _one_at_a_time: one_at_a_time })
    }

    pub fn remount(&self, options: &str) {
        let status =
            Command::new("mount").args(["-o", &format!("remount,{options}")]).arg(&self.mount).status().unwrap();
        assert!(status.success(), "remount {options}");
    }

    pub fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}
