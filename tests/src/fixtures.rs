//! The objects and ids the end-to-end tests share: one definition each.

use std::fmt::Display;

/// A device id of the test fleet. Each test world has its own emulator, so one prefix serves them all;
/// ids compare in the order of `i`.
pub fn dev(i: impl Display) -> String {
    format!("5a5b5c5d-0000-4000-8000-{i:0>12}")
}

/// Device `i` of ring `ring` (a fleet of rings, each of its own devices).
pub fn ring_device(ring: u32, i: u32) -> String {
    format!("6f1c2a10-7d4b-4c8e-{ring:04}-{i:012}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_well_formed_and_ordered() {
        assert_eq!(dev(7), "5a5b5c5d-0000-4000-8000-000000000007");
        assert_eq!(dev(7usize), dev(7u32));
        assert!(dev(9) < dev(10));
        assert_eq!(ring_device(3, 4), "6f1c2a10-7d4b-4c8e-0003-000000000004");
    }
}
