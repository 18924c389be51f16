//! Archives: the walker and its two visitors.
pub mod extract;
pub mod inspect;
pub mod tree;
pub mod walk;
