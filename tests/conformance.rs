//! Differential conformance against Twisted: the Rust interpreter of the op
//! language (see `DESIGN-conformance.md`).
//!
//! * `golden_traces_match_twisted` replays the scripts in
//!   `conformance/golden/scripts.txt` and compares with the traces Twisted
//!   26.10 produced for them (`conformance/golden/twisted.txt`, recorded by
//!   `conformance/run.py --record-golden`), so `cargo test` checks
//!   conformance without Python.
//! * `replay_scripts_from_env` is the entry point of `conformance/run.py`:
//!   it reads `CONFORMANCE_SCRIPTS` and writes the traces to
//!   `CONFORMANCE_OUT`.

#[path = "conformance/interp.rs"]
mod interp;

use std::path::Path;

fn split_traces(text: &str) -> Vec<(String, Vec<String>)> {
    interp::parse_scripts(text)
}

#[test]
fn golden_traces_match_twisted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/golden");
    let scripts = std::fs::read_to_string(dir.join("scripts.txt")).expect("golden scripts");
    let expected = std::fs::read_to_string(dir.join("twisted.txt")).expect("golden traces");
    let ours = interp::run_all(&scripts);
    let scripts = split_traces(&scripts);
    let expected = split_traces(&expected);
    let ours = split_traces(&ours);
    assert!(
        scripts.len() >= 100,
        "the golden set has {} scripts",
        scripts.len()
    );
    assert_eq!(
        expected.len(),
        scripts.len(),
        "one Twisted trace per script"
    );
    let mut mismatches = Vec::new();
    for ((script, want), got) in scripts.iter().zip(&expected).zip(&ours) {
        assert_eq!(want.0, got.0, "trace headers out of step");
        if want.1 != got.1 {
            mismatches.push(format!(
                "{}\nops:\n  {}\ntwisted:\n  {}\nours:\n  {}",
                script.0,
                script.1.join("\n  "),
                want.1.join("\n  "),
                got.1.join("\n  ")
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} scripts differ from Twisted:\n{}",
        mismatches.len(),
        scripts.len(),
        mismatches.join("\n\n")
    );
}

#[test]
#[ignore = "driven by conformance/run.py (CONFORMANCE_SCRIPTS, CONFORMANCE_OUT)"]
fn replay_scripts_from_env() {
    let input = std::env::var("CONFORMANCE_SCRIPTS").expect("CONFORMANCE_SCRIPTS is not set");
    let output = std::env::var("CONFORMANCE_OUT").expect("CONFORMANCE_OUT is not set");
    let scripts = std::fs::read_to_string(&input).expect("read the scripts");
    std::fs::write(&output, interp::run_all(&scripts)).expect("write the traces");
}
