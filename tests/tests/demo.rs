//! `ringwire demo`, as `make demo` runs it: the lab, the counters, the file.

use std::process::Command;

use ringwire_tests::{bin, privileged};

/// A short demo: the counters reconcile, the generator's frames all arrive,
/// tcpdump reads the pcap file, the lab is gone; and what an earlier demo
/// left in the temporary directory is removed (only the newest is kept).
#[test]
fn the_demo_reconciles_removes_its_lab_and_keeps_only_the_newest_file() {
    if !privileged("the_demo_reconciles_removes_its_lab_and_keeps_only_the_newest_file") {
        return;
    }
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

/// Removes a directory when dropped.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
