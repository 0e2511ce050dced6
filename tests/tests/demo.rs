//! `ringwire demo`, as `make demo` runs it: the lab, the counters, the file.

use std::process::Command;

use ringwire_tests::{bin, privileged};

/// A short demo: the counters reconcile, the generator's frames all arrive,
/// tcpdump reads the pcap file, the lab is gone; and what an earlier demo
/// left in the temporary directory is removed (only the newest is kept).
/// One demo at a time: a demo leaves another's lab alone, so two at once
/// would each keep the stale lab the other test planted.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_demo_reconciles_removes_its_lab_and_keeps_only_the_newest_file() {
    if !privileged("the_demo_reconciles_removes_its_lab_and_keeps_only_the_newest_file") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // An earlier demo's directory, whose process is gone.
    let dead = (900_000..999_999).find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).unwrap();
    let earlier = std::env::temp_dir().join(format!("ringwire-demo-{dead}"));
    std::fs::create_dir_all(&earlier).unwrap();
    std::fs::write(earlier.join("demo.pcap"), b"old").unwrap();

    let out = Command::new(bin("ringwire")).args(["demo", "--duration", "2", "--rate", "20000"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // Its own directory, whatever happens below.
    let pcap =
        stdout.lines().find_map(|l| l.strip_prefix("pcap file: ")).map(|l| l.split("  ").next().unwrap().to_owned());
    let _cleanup = pcap.as_ref().map(|p| Cleanup(std::path::Path::new(p).parent().unwrap().to_path_buf()));
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(!earlier.exists(), "the earlier demo's directory is removed: {stdout}");
    assert!(stdout.contains(&format!("removed {}", earlier.display())), "{stdout}");
    assert!(stdout.contains("accounting: all counters reconcile"), "{stdout}");
    assert!(
        stdout.contains("generator sent 40000 frames; engine received 40000, kernel dropped 0, the interface dropped 0, lost elsewhere 0"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("lab removed"), "{stdout}");
    let pcap = pcap.expect("the demo names its pcap file");
    assert!(ringwire_tests::tcpdump_count(std::path::Path::new(&pcap)) > 1000, "{pcap}");
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&left.stdout).contains("rwdemo"), "the lab is removed");
}

/// The demo's namespaces now.
fn demo_namespaces() -> Vec<String> {
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("rwdemo"))
        .map(str::to_owned)
        .collect()
}

/// A demo interrupted at any moment leaves no lab behind: Ctrl-C right
/// after it starts (it left both namespaces and the veth), or halfway
/// (the generator still reports what it sent; it was killed without a
/// word); and a lab a killed demo left is removed by the next demo.
#[test]
fn an_interrupted_or_killed_demo_leaves_no_lab() {
    if !privileged("an_interrupted_or_killed_demo_leaves_no_lab") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let demo = |after: std::time::Duration| {
        let child = Command::new(bin("ringwire"))
            .args(["demo", "--duration", "3", "--rate", "20000"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(after);
        // SAFETY: kill(2) on our own child, not yet waited for.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(p) = stdout.lines().find_map(|l| l.strip_prefix("pcap file: ")) {
            let _ = std::fs::remove_dir_all(std::path::Path::new(p.split("  ").next().unwrap()).parent().unwrap());
        }
        (out.status, stdout)
    };
    for ms in [30, 100, 200] {
        let (_, stdout) = demo(std::time::Duration::from_millis(ms));
        assert_eq!(demo_namespaces(), Vec::<String>::new(), "interrupted after {ms} ms: {stdout}");
    }
    let (status, stdout) = demo(std::time::Duration::from_millis(1500));
    assert!(status.success(), "{stdout}");
    let sent = stdout.lines().find(|l| l.starts_with("generator sent ")).unwrap_or_else(|| panic!("{stdout}"));
    assert!(sent.ends_with("lost elsewhere 0"), "{sent}");
    assert_eq!(demo_namespaces(), Vec::<String>::new(), "{stdout}");

    // A lab a killed demo left behind (its name as a demo gives it).
    let dead = (90_000..99_999).find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).unwrap();
    let stale = format!("rwdemo{dead}x0-gen");
    assert!(Command::new("ip").args(["netns", "add", &stale]).status().unwrap().success());
    let (status, stdout) = demo(std::time::Duration::from_millis(1500));
    let _ = Command::new("ip").args(["netns", "del", &stale]).status();
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains(&format!("removed namespace {stale}")), "{stdout}");
    assert_eq!(demo_namespaces(), Vec::<String>::new(), "{stdout}");
}

/// Removes a directory when dropped.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
