//! Channel dependency graph (CDG) analysis. (Being written.)
