//! The Rust side of the twisted.web example (`examples/delayed_web.py`).

use pyo3::prelude::*;

pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
