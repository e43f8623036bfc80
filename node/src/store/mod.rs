//! Persistent state. (Being written.)
