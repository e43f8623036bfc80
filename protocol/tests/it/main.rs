//! Protocol test suite: one binary (link time matters on small machines).

mod golden;
mod properties;
mod samples;
mod validation;
