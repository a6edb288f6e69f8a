//! Compile-time behaviour of `#[derive(Persistent)]`: every mistake in
//! `ui-tests/fail` is a compile error with the message in its `.stderr`,
//! and every model in `ui-tests/pass` compiles and runs.
//!
//! Refresh the expected output with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("../ui-tests/fail/**/*.rs");
    cases.pass("../ui-tests/pass/*.rs");
}
