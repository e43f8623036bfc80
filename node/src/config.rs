//! Configuration. (Being written.)
