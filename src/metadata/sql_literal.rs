//! SQL literals for the metadata statements, which are sent as simple queries with their values
//! inline: one protocol message, one round trip, planned for the actual values every time, and
//! nothing that outlives the statement on the server. That is correct through any pooler
//! (PgBouncer's transaction mode hands each statement to whichever server connection is free,
//! so a statement prepared on one may be executed on another) and needs no session setting to
//! avoid generic plans.
//!
//! Strings are written as `E'…'` literals, which Postgres reads the same way whatever
//! `standard_conforming_strings` says: `\` and `'` are the only characters with a meaning
//! inside them, and both are escaped. NUL cannot be held by Postgres text and is refused.

use crate::errors::{Code, PublishError};

/// Appends `s` as an `E'…'` string literal.
pub fn push_text(out: &mut String, s: &str) -> Result<(), PublishError> {
    if s.contains('\0') {
        return Err(PublishError::new(
            Code::Database,
            "a value contains a NUL character, which Postgres text cannot hold",
        ));
    }
    out.reserve(s.len() + 3);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(())
}

/// Appends the values as one `E'{"…","…"}'::text[]` constant: one literal whatever the number
/// of values, so the statement text keeps one shape (one `pg_stat_statements` entry) for every
/// group size, and Postgres parses the array in one pass. Inside the array every element is
/// double-quoted with `\` and `"` backslash-escaped (array_in's rules; a quoted `NULL` is the
/// text NULL); the array text is then escaped as a string literal.
pub fn push_text_array<'a>(
    out: &mut String,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<(), PublishError> {
    let mut array = String::from("{");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push('"');
        for c in v.chars() {
            if c == '\\' || c == '"' {
                array.push('\\');
            }
            array.push(c);
        }
        array.push('"');
    }
    array.push('}');
    push_text(out, &array)?;
    out.push_str("::text[]");
    Ok(())
}

/// Comma-separated text arrays, one per column (the arguments of an `unnest(…)`).
pub fn text_arrays(columns: &[&[&str]]) -> Result<String, PublishError> {
    let len: usize = columns
        .iter()
        .flat_map(|c| c.iter())
        .map(|v| v.len() + 4)
        .sum();
    let mut out = String::with_capacity(len + columns.len() * 16);
    for (i, col) in columns.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_text_array(&mut out, col.iter().copied())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> String {
        let mut out = String::new();
        push_text(&mut out, s).unwrap();
        out
    }

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        assert_eq!(lit("plain"), "E'plain'");
        assert_eq!(lit("o'clock"), "E'o''clock'");
        assert_eq!(lit("a\\b"), "E'a\\\\b'");
        assert_eq!(lit("\\'; DROP TABLE x; --"), "E'\\\\''; DROP TABLE x; --'");
        assert_eq!(lit("é\n☃"), "E'é\n☃'");
        assert_eq!(lit(""), "E''");
    }

    #[test]
    fn nul_is_refused() {
        let mut out = String::new();
        let e = push_text(&mut out, "a\0b").unwrap_err();
        assert_eq!(e.code, Code::Database);
    }

    #[test]
    fn arrays() {
        assert_eq!(
            text_arrays(&[&["a", "b'"], &[]]).unwrap(),
            r#"E'{"a","b''"}'::text[], E'{}'::text[]"#
        );
        // The array's own delimiters: escaped for array_in, then backslashes again for E''.
        assert_eq!(
            text_arrays(&[&[r#"x"y\z"#, "{,}", "NULL"]]).unwrap(),
            r#"E'{"x\\"y\\\\z","{,}","NULL"}'::text[]"#
        );
    }

    /// Every literal ends where it should: outside the quotes there is nothing but the
    /// delimiters this module writes, whatever the input.
    #[test]
    fn literal_boundaries_hold_for_arbitrary_input() {
        use proptest::prelude::*;
        proptest!(|(s in "[^\\x00]{0,40}")| {
            let l = lit(&s);
            prop_assert!(l.starts_with("E'") && l.ends_with('\''));
            let body = &l[2..l.len() - 1];
            // Decode the body as Postgres would: it must give back s and consume everything.
            let mut decoded = String::new();
            let mut it = body.chars().peekable();
            while let Some(c) = it.next() {
                match c {
                    '\\' => { prop_assert_eq!(it.next(), Some('\\')); decoded.push('\\'); }
                    '\'' => { prop_assert_eq!(it.next(), Some('\'')); decoded.push('\''); }
                    c => decoded.push(c),
                }
            }
            prop_assert_eq!(decoded, s);
        });
    }
}
