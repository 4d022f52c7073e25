//! How a FoundationDB error maps to a [`KvError`]: the decision of
//! [`fdb`](super::fdb)'s error table, kept apart from the FFI so it compiles and is
//! tested without `libfdb_c` (which the `fdb` feature links, and which most
//! machines running the tests do not have).
//!
//! The caller supplies the error code and FoundationDB's own predicates for it
//! (`fdb_error_predicate` `MAYBE_COMMITTED` and `RETRYABLE`, evaluated by the
//! client library, so new codes are classified as the library classifies them).

use super::KvError;

/// `not_committed`: a concurrent commit invalidated this transaction's reads.
pub(crate) const NOT_COMMITTED: i32 = 1020;
/// `transaction_timed_out`: the `TIMEOUT` transaction option fired.
pub(crate) const TRANSACTION_TIMED_OUT: i32 = 1031;
/// `transaction_too_large`: the transaction's writes exceed 10 MB.
pub(crate) const TRANSACTION_TOO_LARGE: i32 = 2101;
/// `key_too_large`: a key exceeds 10 kB.
pub(crate) const KEY_TOO_LARGE: i32 = 2102;
/// `value_too_large`: a value exceeds 100 kB.
pub(crate) const VALUE_TOO_LARGE: i32 = 2103;

/// Where an error arose: only a commit can leave its outcome unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Anything but a commit: nothing can have been written.
    Other,
    /// A commit: its outcome may be unknown.
    Commit,
}

/// One FoundationDB error as the client library describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdbErrorFacts {
    /// The error code.
    pub(crate) code: i32,
    /// `fdb_error_predicate(MAYBE_COMMITTED, code)`.
    pub(crate) maybe_committed: bool,
    /// `fdb_error_predicate(RETRYABLE, code)`.
    pub(crate) retryable: bool,
}

/// The [`KvError`] for an error in `phase`; `detail` is its message. The rows of
/// the table in [`fdb`](super::fdb)'s documentation, checked in order.
pub(crate) fn classify(phase: Phase, facts: FdbErrorFacts, detail: String) -> KvError {
    let unknown_outcome = |detail: String| match phase {
        Phase::Commit => KvError::MaybeCommitted(detail),
        Phase::Other => KvError::Unavailable(detail),
    };
    match facts.code {
        NOT_COMMITTED => KvError::Conflict,
        TRANSACTION_TOO_LARGE | KEY_TOO_LARGE | VALUE_TOO_LARGE => KvError::TooLarge(detail),
        TRANSACTION_TIMED_OUT => unknown_outcome(detail),
        _ if facts.maybe_committed => unknown_outcome(detail),
        _ if facts.retryable => KvError::Unavailable(detail),
        _ => KvError::Backend(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes with the predicates FoundationDB 7.3's client library gives them
    /// (`bindings/c/fdb_c.cpp`, `fdb_error_predicate`).
    const CODES: &[(i32, &str, bool, bool)] = &[
        // (code, name, maybe committed, retryable)
        (1020, "not_committed", false, true),
        (1021, "commit_unknown_result", true, true),
        (1039, "cluster_version_changed", true, true),
        (1007, "transaction_too_old", false, true),
        (1009, "future_version", false, true),
        (1037, "process_behind", false, true),
        (1038, "database_locked", false, true),
        (1031, "transaction_timed_out", false, false),
        (2101, "transaction_too_large", false, false),
        (2102, "key_too_large", false, false),
        (2103, "value_too_large", false, false),
        (2000, "client_invalid_operation", false, false),
        (4100, "internal_error", false, false),
    ];

    /// What the caller of a transaction learns: (certainly not committed,
    /// retryable by `Database::run`).
    fn outcome(error: &KvError) -> (bool, bool) {
        (error.is_certainly_not_committed(), error.is_retryable())
    }

    fn classified(phase: Phase, code: i32) -> KvError {
        let &(_, name, maybe_committed, retryable) = CODES
            .iter()
            .find(|(c, ..)| *c == code)
            .expect("code listed");
        let facts = FdbErrorFacts {
            code,
            maybe_committed,
            retryable,
        };
        classify(phase, facts, name.to_owned())
    }

    #[test]
    fn every_row_of_the_table() {
        use KvError::*;
        for phase in [Phase::Other, Phase::Commit] {
            let commit = phase == Phase::Commit;
            for &(code, name, _, _) in CODES {
                let error = classified(phase, code);
                let expected = match code {
                    1020 => Conflict,
                    2101..=2103 => TooLarge(name.into()),
                    1021 | 1039 | 1031 if commit => MaybeCommitted(name.into()),
                    1021 | 1039 | 1031 => Unavailable(name.into()),
                    1007 | 1009 | 1037 | 1038 => Unavailable(name.into()),
                    _ => Backend(name.into()),
                };
                assert_eq!(error, expected, "{name} ({code}) in {phase:?}");
            }
        }
    }

    #[test]
    fn outcomes_say_what_the_caller_may_do() {
        // A conflict: certainly not committed, retry.
        for phase in [Phase::Other, Phase::Commit] {
            assert_eq!(outcome(&classified(phase, 1020)), (true, true));
            // Too large: certainly not committed, retrying cannot help.
            assert_eq!(outcome(&classified(phase, 2101)), (true, false));
            // Transient cluster trouble other than an unknown commit result:
            // nothing written, retry.
            assert_eq!(outcome(&classified(phase, 1007)), (true, true));
            assert_eq!(outcome(&classified(phase, 1037)), (true, true));
            // Unknown errors: not known to be uncommitted, not retried.
            assert_eq!(outcome(&classified(phase, 2000)), (false, false));
        }
        // An unknown commit result or a timeout during the commit: maybe
        // committed, retried only by idempotent bodies (Database::run tells them).
        for code in [1021, 1039, 1031] {
            assert_eq!(outcome(&classified(Phase::Commit, code)), (false, true));
            // The same codes from a read: nothing can have been written.
            assert_eq!(outcome(&classified(Phase::Other, code)), (true, true));
        }
    }

    #[test]
    fn explicit_codes_win_over_the_predicates() {
        // not_committed is retryable by the predicate, but is a plain conflict.
        let facts = FdbErrorFacts {
            code: NOT_COMMITTED,
            maybe_committed: true,
            retryable: true,
        };
        assert_eq!(
            classify(Phase::Commit, facts, String::new()),
            KvError::Conflict
        );
        // A code the table does not name follows the library's predicates.
        let facts = FdbErrorFacts {
            code: 1234,
            maybe_committed: true,
            retryable: true,
        };
        assert!(matches!(
            classify(Phase::Commit, facts, String::new()),
            KvError::MaybeCommitted(_)
        ));
        let facts = FdbErrorFacts {
            maybe_committed: false,
            ..facts
        };
        assert!(matches!(
            classify(Phase::Commit, facts, String::new()),
            KvError::Unavailable(_)
        ));
    }
}
