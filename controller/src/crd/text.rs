//! Text from users, shown back safely: invisible characters (controls, zero-width and bidirectional
//! marks) are what a value must not hide behind.

/// A control character, or one that changes how text around it shows (zero-width, bidirectional
/// overrides): `printable` replaces them, and request annotations refuse them.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A value made safe to print: control and invisible characters escaped, long values cut.
pub fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(80)
        .map(|c| if is_invisible(c) { '\u{fffd}' } else { c })
        .collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_hides_invisible_characters() {
        assert_eq!(printable("ab\u{202e}c\n"), "ab\u{fffd}c\u{fffd}");
        assert_eq!(printable(&"x".repeat(100)).chars().count(), 81);
    }
}
