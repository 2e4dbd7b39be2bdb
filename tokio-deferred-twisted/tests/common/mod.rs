//! An embedded interpreter that can import Twisted, for the conversion
//! layer's tests.
//!
//! Twisted is looked for on `PYTHONPATH` (`scripts/test-twisted.sh` sets
//! it), then in the venv that script makes (`target/twisted-venv`). Without
//! it the tests print why and pass without running, unless
//! `TOKIO_DEFERRED_TWISTED_REQUIRE_PYTHON` is set (the script sets it).

#![allow(dead_code)]

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyModule;

/// Python helpers (with `ThreadedMemoryReactorClock` from
/// `python-tests/memory_reactor.py`).
const HELPERS: &std::ffi::CStr = cr#"
from memory_reactor import ThreadedMemoryReactorClock

def raise_in_here(exc):
    raise exc

def failed_deferred(exc):
    from twisted.internet import defer
    try:
        raise_in_here(exc)
    except BaseException:
        return defer.fail()

def results(d):
    out = []
    d.addBoth(out.append)
    return out
"#;

/// The venv's `site-packages` directories.
fn venv_site_packages() -> Vec<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/twisted-venv/lib");
    let Ok(entries) = std::fs::read_dir(&venv) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages"))
        .filter(|p| p.is_dir())
        .collect()
}

/// Runs `f` with the GIL and the helpers module, if Twisted can be
/// imported; otherwise says why and returns `None`.
pub fn with_twisted<R>(
    f: impl for<'py> FnOnce(Python<'py>, &Bound<'py, PyModule>) -> R,
) -> Option<R> {
    Python::initialize();
    let ready = Python::attach(|py| -> PyResult<Py<PyModule>> {
        if py.import("twisted").is_err() {
            let sys_path = py.import("sys")?.getattr("path")?;
            for dir in venv_site_packages() {
                sys_path.call_method1("insert", (0, dir.to_string_lossy()))?;
            }
        }
        py.import("twisted.internet.defer")?;
        let python_tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python-tests");
        py.import("sys")?
            .getattr("path")?
            .call_method1("insert", (0, python_tests.to_string_lossy()))?;
        Ok(PyModule::from_code(py, HELPERS, c"helpers.py", c"helpers")?.unbind())
    });
    let helpers = match ready {
        Ok(helpers) => helpers,
        Err(err) => {
            let why = format!(
                "skipped: Twisted cannot be imported ({err}); run scripts/test-twisted.sh, \
                 which makes target/twisted-venv"
            );
            if std::env::var_os("TOKIO_DEFERRED_TWISTED_REQUIRE_PYTHON").is_some() {
                panic!("{why}");
            }
            // Past the test harness's capture, so that the reason shows.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "{why}");
            return None;
        }
    };
    Some(Python::attach(|py| f(py, helpers.bind(py))))
}
