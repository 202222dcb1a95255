//! A small RFC 4514 distinguished-name parser: enough to take a group's `cn` out of a `memberOf`
//! value and to tell whether a DN lies under a base DN. Values are unescaped (`\,` and `\2C` both
//! become `,`); hex-string (`#...`) values are kept as written.

use std::fmt;

/// One attribute type and value of an RDN (`cn=reports`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ava {
    pub attr: String,
    pub value: String,
}

/// A parsed DN: RDNs from the leaf (first) to the root (last); each RDN has one or more AVAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dn(pub Vec<Vec<Ava>>);

/// Why a DN did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnError(pub &'static str);

impl fmt::Display for DnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid DN: {}", self.0)
    }
}

impl std::error::Error for DnError {}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a DN string. The empty string is the empty DN (the root).
pub fn parse(s: &str) -> Result<Dn, DnError> {
    let b = s.as_bytes();
    let mut rdns: Vec<Vec<Ava>> = Vec::new();
    if s.trim().is_empty() {
        return Ok(Dn(rdns));
    }
    let mut i = 0;
    let mut rdn: Vec<Ava> = Vec::new();
    loop {
        // attribute type
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' && b[i] != b'+' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return Err(DnError("attribute type without '='"));
        }
        let attr = s[start..i].trim();
        if attr.is_empty()
            || !attr
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        {
            return Err(DnError("bad attribute type"));
        }
        i += 1; // '='
        // attribute value
        let mut value: Vec<u8> = Vec::new();
        let mut trailing_unescaped_spaces = 0usize;
        if i < b.len() && b[i] == b'#' {
            while i < b.len() && b[i] != b',' && b[i] != b'+' && b[i] != b';' {
                value.push(b[i]);
                i += 1;
            }
        } else {
            while i < b.len() && b[i] == b' ' {
                i += 1; // leading spaces are not part of the value
            }
            while i < b.len() {
                let c = b[i];
                if c == b',' || c == b'+' || c == b';' {
                    break;
                }
                if c == b'\\' {
                    let Some(&n) = b.get(i + 1) else {
                        return Err(DnError("dangling escape"));
                    };
                    if let (Some(h), Some(l)) = (hex(n), b.get(i + 2).and_then(|x| hex(*x))) {
                        value.push(h << 4 | l);
                        i += 3;
                    } else if b" \"#+,;<>\\=*()".contains(&n) {
                        value.push(n);
                        i += 2;
                    } else {
                        return Err(DnError("bad escape"));
                    }
                    trailing_unescaped_spaces = 0;
                    continue;
                }
                if c == b'"' {
                    return Err(DnError("unescaped quote"));
                }
                trailing_unescaped_spaces = if c == b' ' {
                    trailing_unescaped_spaces + 1
                } else {
                    0
                };
                value.push(c);
                i += 1;
            }
            value.truncate(value.len() - trailing_unescaped_spaces);
        }
        let value = String::from_utf8(value).map_err(|_| DnError("value is not UTF-8"))?;
        rdn.push(Ava {
            attr: attr.to_owned(),
            value,
        });
        if i >= b.len() {
            rdns.push(rdn);
            return Ok(Dn(rdns));
        }
        let sep = b[i];
        i += 1;
        if sep != b'+' {
            rdns.push(std::mem::take(&mut rdn));
        }
        if i >= b.len() {
            return Err(DnError("trailing separator"));
        }
    }
}

fn ava_eq(a: &Ava, b: &Ava) -> bool {
    a.attr.eq_ignore_ascii_case(&b.attr) && a.value.to_lowercase() == b.value.to_lowercase()
}

impl Dn {
    /// The value of `attr` in the leaf RDN, if the leaf RDN has that attribute.
    pub fn leaf_value(&self, attr: &str) -> Option<&str> {
        self.0
            .first()?
            .iter()
            .find(|a| a.attr.eq_ignore_ascii_case(attr))
            .map(|a| a.value.as_str())
    }

    /// True when `self` is `base` or lies below it. Attribute types and values compare
    /// case-insensitively (right for the `cn`/`ou`/`dc` naming attributes directories use).
    pub fn is_within(&self, base: &Dn) -> bool {
        if base.0.len() > self.0.len() {
            return false;
        }
        let offset = self.0.len() - base.0.len();
        self.0[offset..]
            .iter()
            .zip(&base.0)
            .all(|(x, y)| x.len() == y.len() && x.iter().all(|a| y.iter().any(|b| ava_eq(a, b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple() {
        let d = parse("cn=reports,ou=groups,dc=example,dc=org").unwrap();
        assert_eq!(d.0.len(), 4);
        assert_eq!(d.leaf_value("CN"), Some("reports"));
        assert_eq!(d.leaf_value("ou"), None);
    }

    #[test]
    fn escapes() {
        let d = parse(r"cn=a\,b\2Cc\3d\\ \+x ,ou=g").unwrap();
        assert_eq!(d.leaf_value("cn"), Some(r"a,b,c=\ +x"));
        let d = parse(r"uid=evil*)(uid\3D*))(|(uid\3D*,ou=people,dc=example,dc=org").unwrap();
        assert_eq!(d.leaf_value("uid"), Some("evil*)(uid=*))(|(uid=*"));
        let d = parse(r"cn=\ lead\ ,dc=x").unwrap();
        assert_eq!(d.leaf_value("cn"), Some(" lead "));
        let d = parse("cn=caf\\C3\\A9,dc=x").unwrap();
        assert_eq!(d.leaf_value("cn"), Some("café"));
    }

    #[test]
    fn multivalued_rdn() {
        let d = parse("uid=x+cn=Name,dc=x").unwrap();
        assert_eq!(d.0[0].len(), 2);
        assert_eq!(d.leaf_value("cn"), Some("Name"));
    }

    #[test]
    fn within() {
        let base = parse("ou=Groups, dc=Example,dc=org").unwrap();
        assert!(
            parse("cn=a,ou=groups,dc=example,dc=org")
                .unwrap()
                .is_within(&base)
        );
        assert!(
            !parse("cn=a,ou=legacy,dc=example,dc=org")
                .unwrap()
                .is_within(&base)
        );
        assert!(!parse("dc=org").unwrap().is_within(&base));
    }

    #[test]
    fn invalid() {
        for s in ["cn", "cn=a,", "=a", "cn=a\\", "cn=a\\zz", "cn=\"q\""] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}
