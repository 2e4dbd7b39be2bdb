//! `Failure`: wrapping, matching, trapping, conversions, debugging info.

mod common;

use std::error::Error;

use common::*;
use tokio_deferred::*;

#[test]
fn failure_wraps_any_error_and_matches_its_type() {
    let f = Failure::new(GenericError("x".into()));
    assert!(f.is::<GenericError>());
    assert!(!f.is::<OtherError>());
    assert_eq!(
        f.downcast_ref::<GenericError>(),
        Some(&GenericError("x".into()))
    );
    assert_eq!(f.to_string(), "generic error: x");
    assert!(f.type_name().ends_with("GenericError"), "{}", f.type_name());
    assert!(format!("{f:?}").contains("GenericError"));
}

#[test]
fn question_mark_converts_errors() {
    fn parse(s: &str) -> Result<u32, Failure> {
        Ok(s.parse::<u32>()?)
    }
    assert!(parse("x").unwrap_err().is::<std::num::ParseIntError>());
}

// Twisted: Failure.trap re-raises when the type does not match.
#[test]
fn trap_gives_the_error_back_or_reraises() {
    let d = fail::<u32>(GenericError("g".into())).add_errback(|f| {
        let e = f.trap::<GenericError>()?;
        assert_eq!(e.0, "g");
        Ok(1)
    });
    assert_eq!(success_result_of(&d), 1);

    let original = Failure::new(OtherError);
    let d = fail::<u32>(original.clone()).add_errback(|f| {
        f.trap::<GenericError>()?;
        Ok(1)
    });
    let f = failure_result_of(&d);
    assert!(f.is::<OtherError>());
    assert!(f.ptr_eq(&original), "trap re-raises the same failure");
}

#[test]
fn failures_are_cheap_clones_compared_by_identity() {
    let a = Failure::msg("m");
    let b = a.clone();
    let c = Failure::msg("m");
    assert!(a.ptr_eq(&b));
    assert!(!a.ptr_eq(&c));
    assert!(a.is::<MessageError>());
}

#[test]
fn failure_converts_into_a_boxed_error_and_back() {
    let f = Failure::new(GenericError("boxed".into()));
    let boxed: Box<dyn Error + Send + Sync> = f.clone().into();
    assert_eq!(boxed.to_string(), "generic error: boxed");
    let back = Failure::from_boxed(boxed);
    assert!(
        back.ptr_eq(&f),
        "a Failure boxed and unboxed is the same Failure"
    );

    let io: Box<dyn Error + Send + Sync> = Box::new(std::io::Error::other("io"));
    let f = Failure::from_boxed(io);
    assert!(f.is::<std::io::Error>());
    assert_eq!(f.to_string(), "io");
    assert!(
        f.clone().trap::<std::io::Error>().is_err(),
        "a boxed error cannot be trapped by value"
    );

    let plain: Box<dyn Error> = Failure::msg("p").into();
    assert_eq!(plain.to_string(), "p");
}

#[test]
fn failure_error_wrapper_is_a_std_error() {
    let f = FailureError(Failure::msg("wrapped"));
    let e: &dyn Error = &f;
    assert_eq!(e.to_string(), "wrapped");
    // Wrapping a FailureError in a Failure unwraps it.
    let again = Failure::new(f.clone());
    assert!(again.ptr_eq(&f.0));
}

#[test]
fn panics_become_panic_errors_with_the_message() {
    let d = succeed(1).add_callback(|_| -> Result<u8, Failure> { panic!("kaboom {}", 7) });
    let f = failure_result_of(&d);
    assert!(f.is_panic());
    assert_eq!(
        f.downcast_ref::<PanicError>().unwrap().message(),
        "kaboom 7"
    );
    assert_eq!(f.to_string(), "panicked: kaboom 7");
    let f = Failure::from_panic(Box::new(42_u8));
    assert!(f.is_panic());
}

// Twisted: testAlreadyCalledDebug_CC etc. and testNoDebugging.
#[test]
fn already_called_error_names_the_sites_and_carries_backtraces_when_debugging() {
    let (_d, r) = Deferred::<u8>::new();
    r.callback(1).unwrap();
    let e = r.callback(2).unwrap_err();
    assert!(
        e.info().contains("created at tests/failure.rs"),
        "{}",
        e.info()
    );
    // Without debugging only the creation site is kept (8 bytes per
    // Deferred); the message says how to get more.
    assert!(!e.info().contains("first fired at"), "{}", e.info());
    assert!(e.info().contains("set_debugging(true)"), "{}", e.info());
    assert!(!e.info().contains(" C:"), "no backtrace without debugging");

    set_debugging(true);
    assert!(is_debugging());
    let (_d, r) = Deferred::<u8>::new();
    set_debugging(false);
    // Twisted: testSwitchDebugging — switching between creation and fire is fine.
    r.callback(1).unwrap();
    set_debugging(true);
    let (_d2, r2) = Deferred::<u8>::new();
    r2.callback(1).unwrap();
    set_debugging(false);
    let e = r2.callback(2).unwrap_err();
    assert!(
        e.info().contains("first fired at tests/failure.rs"),
        "{}",
        e.info()
    );
    assert!(
        e.info().contains(" C: Deferred was created:"),
        "{}",
        e.info()
    );
    assert!(e.info().contains(" I: First Invoker was:"), "{}", e.info());
    assert!(e.to_string().contains("already called"));
    assert_eq!(e.into_inner(), 2);
    let e = r.callback(3).unwrap_err();
    assert!(e.info().contains(" C: Deferred was created:"));
    assert!(
        e.info().contains("first fired at tests/failure.rs"),
        "the site is recorded for a Deferred created while debugging"
    );
    assert!(!e.info().contains(" I:"), "fired while debugging was off");
}
