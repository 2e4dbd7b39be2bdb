//! Failures across the border, with an embedded interpreter.

mod common;

use common::with_twisted;
use pyo3::exceptions::{PyBaseException, PyKeyError, PyValueError};
use pyo3::prelude::*;
use tokio_deferred::{CancelledError, Failure, TimeoutError};
use tokio_deferred_twisted::exceptions::{
    ReactorShutdownError as PyShutdown, RustError, RustPanic,
};
use tokio_deferred_twisted::{
    PythonError, ReactorShutdownError, exception_to_failure, failure_to_exception, pyerr_to_failure,
};

#[test]
fn a_python_exception_keeps_its_object_type_message_and_traceback() {
    with_twisted(|py, helpers| {
        let original = PyKeyError::new_err("alice").into_value(py).into_bound(py);
        let err = helpers
            .getattr("raise_in_here")
            .unwrap()
            .call1((&original,))
            .unwrap_err();
        let failure = pyerr_to_failure(py, err);
        let error = failure.downcast_ref::<PythonError>().unwrap();
        assert_eq!(error.type_name(), "KeyError");
        assert_eq!(error.message(), "'alice'");
        assert_eq!(failure.to_string(), "KeyError: 'alice'");
        assert!(
            error.traceback().contains("raise_in_here"),
            "{}",
            error.traceback()
        );
        assert!(error.traceback().trim_end().ends_with("KeyError: 'alice'"));
        assert!(error.is_instance_of::<PyKeyError>(py));
        assert!(!error.is_instance_of::<PyValueError>(py));
        // Back to Python: the very same object.
        assert!(failure_to_exception(py, &failure).is(&original));
    });
}

#[test]
fn non_builtin_exceptions_have_qualified_names() {
    with_twisted(|py, _| {
        let defer = py.import("twisted.internet.defer").unwrap();
        let e = defer
            .getattr("AlreadyCalledError")
            .unwrap()
            .call1(("x",))
            .unwrap();
        let failure = exception_to_failure(e.cast::<PyBaseException>().unwrap());
        let error = failure.downcast_ref::<PythonError>().unwrap();
        assert_eq!(
            error.type_name(),
            "twisted.internet.defer.AlreadyCalledError"
        );
        let ty = defer.getattr("AlreadyCalledError").unwrap();
        assert!(error.is_instance(ty.cast().unwrap()));
    });
}

#[test]
fn cancelled_error_maps_both_ways() {
    with_twisted(|py, _| {
        let defer = py.import("twisted.internet.defer").unwrap();
        let cancelled = defer.getattr("CancelledError").unwrap();
        let e = failure_to_exception(py, &Failure::new(CancelledError::new()));
        assert!(e.is_instance(&cancelled).unwrap());
        assert!(exception_to_failure(&e).is::<CancelledError>());
    });
}

#[test]
fn rust_failures_become_the_documented_exceptions() {
    with_twisted(|py, _| {
        let panic = std::panic::catch_unwind(|| panic!("worker died")).unwrap_err();
        let e = failure_to_exception(py, &Failure::from_panic(panic));
        assert!(e.is_instance_of::<RustPanic>());
        assert_eq!(e.to_string(), "worker died");

        #[derive(Debug, thiserror::Error)]
        #[error("request failed")]
        struct Outer(#[source] std::io::Error);
        let e = failure_to_exception(py, &Failure::new(Outer(std::io::Error::other("refused"))));
        assert!(e.is_instance_of::<RustError>());
        assert!(!e.is_instance_of::<RustPanic>());
        assert_eq!(e.to_string(), "request failed: refused");
        let rust_type: String = e.getattr("rust_type").unwrap().extract().unwrap();
        assert!(rust_type.ends_with("Outer"), "{rust_type}");

        let timeout = TimeoutError::new(std::time::Duration::from_millis(1500));
        let e = failure_to_exception(py, &Failure::new(timeout));
        let twisted_timeout = py
            .import("twisted.internet.defer")
            .unwrap()
            .getattr("TimeoutError")
            .unwrap();
        assert!(e.is_instance(&twisted_timeout).unwrap());
        let args: (f64, String) = e.getattr("args").unwrap().extract().unwrap();
        assert_eq!(args, (1.5, "Deferred".to_owned()));

        let e = failure_to_exception(py, &Failure::new(ReactorShutdownError::new()));
        assert!(e.is_instance_of::<PyShutdown>());
        assert!(e.is_instance_of::<RustError>());
    });
}

#[test]
fn a_pyerr_in_a_failure_comes_back_as_its_exception() {
    with_twisted(|py, _| {
        let err = PyValueError::new_err("bad");
        let value = err.value(py).clone();
        let failure = Failure::new(err);
        assert!(failure_to_exception(py, &failure).is(&value));
    });
}

#[test]
fn python_errors_are_dropped_without_the_gil() {
    let failure = with_twisted(|py, _| pyerr_to_failure(py, PyValueError::new_err("x")));
    if let Some(failure) = failure {
        // On a thread that never held the GIL: reading and dropping it.
        std::thread::spawn(move || {
            assert_eq!(failure.to_string(), "ValueError: x");
            drop(failure);
        })
        .join()
        .unwrap();
    }
}
