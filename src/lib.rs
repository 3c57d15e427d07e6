//! rotafetch
