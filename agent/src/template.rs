//! LDAP filter templates: `{name}` placeholders filled in one pass.

/// Fills `{name}` placeholders in one pass, so a value that itself contains `{dn}` or `{uid}` is
/// never substituted again. Values are inserted as given: callers escape them first.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    'outer: while !rest.is_empty() {
        if rest.starts_with('{') {
            for (name, value) in values {
                if let Some(after) = rest.strip_prefix(name) {
                    out.push_str(value);
                    rest = after;
                    continue 'outer;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}
