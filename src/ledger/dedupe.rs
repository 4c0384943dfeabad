//! The dedupe ledger (filled in below).
