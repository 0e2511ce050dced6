//! A throw-away network lab: network namespaces joined by veth pairs, made
//! with iproute2 and removed on drop (also when a test fails).
//!
//! Names are unique per process and call, so labs never collide with each
//! other or with interfaces this process did not create. IPv6 is disabled in
//! the namespaces so the kernel adds no traffic of its own (router
//! solicitations, MLD reports) to what a test counts.

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Lab errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// An `ip` / `sysctl` command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("entering network namespace `{ns}`")]
    Setns {
        /// The namespace.
        ns: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Run a command, turning a failure into a [`LabError`].
///
/// # Errors
/// The command line and its stderr.
pub fn run(cmd: &[&str]) -> Result<String, LabError> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| LabError::Command { command: cmd.join(" "), stderr: e.to_string() })?;
    if !out.status.success() {
        return Err(LabError::Command {
            command: cmd.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A set of namespaces and veth pairs, deleted on drop.
#[derive(Debug)]
pub struct Lab {
    tag: String,
    namespaces: Vec<String>,
}

impl Lab {
    /// An empty lab whose names start with `prefix` (a few letters).
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{prefix}{}x{n}", std::process::id() % 100_000);
        Self { tag, namespaces: Vec::new() }
    }

    /// The role (`gen` in `rwb12x3-gen`) of a namespace named by a lab of
    /// `prefix` (`<prefix><pid>x<n>-<role>`), or `None` if `ns` is not one.
    #[must_use]
    pub fn namespace_role<'a>(ns: &'a str, prefix: &str) -> Option<&'a str> {
        let (tag, role) = ns.strip_prefix(prefix)?.split_once('-')?;
        let (pid, n) = tag.split_once('x')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(pid) && digits(n) && !role.is_empty()).then_some(role)
    }

    /// Create a namespace named after the lab; returns its name.
    ///
    /// # Errors
    /// The failed command.
    pub fn namespace(&mut self, name: &str) -> Result<String, LabError> {
        let ns = format!("{}-{name}", self.tag);
        run(&["ip", "netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        run(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6",
        ])?;
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A veth pair with one end in each namespace, both up; returns the
    /// interface names (at most 15 characters).
    ///
    /// # Errors
    /// The failed command.
    pub fn veth(&mut self, ns_a: &str, ns_b: &str) -> Result<(String, String), LabError> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = format!("rw{}{n}", std::process::id() % 100_000);
        let (a, b) = (format!("{base}a"), format!("{base}b"));
        run(&["ip", "link", "add", &a, "netns", ns_a, "type", "veth", "peer", "name", &b, "netns", ns_b])?;
        run(&["ip", "-n", ns_a, "link", "set", &a, "up"])?;
        run(&["ip", "-n", ns_b, "link", "set", &b, "up"])?;
        Ok((a, b))
    }

    /// Run `f` with this thread inside namespace `ns`; threads spawned by `f`
    /// stay there (a socket belongs to the namespace it was created in).
    ///
    /// # Errors
    /// Entering or leaving the namespace failed.
    pub fn within<T>(ns: &str, f: impl FnOnce() -> T) -> Result<T, LabError> {
        let err = |source| LabError::Setns { ns: ns.to_owned(), source };
        let home = File::open("/proc/thread-self/ns/net").map_err(err)?;
        let target = File::open(format!("/var/run/netns/{ns}")).map_err(err)?;
        setns(&target).map_err(err)?;
        let out = f();
        setns(&home).map_err(err)?;
        Ok(out)
    }

    /// The lab's namespaces.
    #[must_use]
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The network namespaces there are now whose names a lab of `prefix`
    /// gives ([`Lab::namespace_role`]): those of running labs and those a
    /// killed run left behind alike.
    ///
    /// # Errors
    /// `ip netns list` failed.
    pub fn named_namespaces(prefix: &str) -> Result<Vec<String>, LabError> {
        Ok(run(&["ip", "netns", "list"])?
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ns| Self::namespace_role(ns, prefix).is_some())
            .map(str::to_owned)
            .collect())
    }

    /// The processes running in namespace `ns` (`ip netns pids`; none if it cannot be asked).
    #[must_use]
    pub fn pids_in(ns: &str) -> Vec<libc::pid_t> {
        run(&["ip", "netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

fn setns(f: &File) -> std::io::Result<()> {
    // SAFETY: `f` is an open namespace file; setns only changes this thread's namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth ends inside it.
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = run(&["ip", "netns", "del", &ns]) {
                crate::say!("ringwire lab: could not remove namespace {ns}: {e}");
            }
        }
    }
}
