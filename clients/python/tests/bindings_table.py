"""URL -> (method, authority, path) as ``autoid prove --url`` binds it. test_binding.py checks the
Python binder against this table; test_interop.py checks that ``autoid verify --url`` (the Rust
binder) accepts a proof made for each row's binding, so the table is the Rust CLI's behaviour."""

from typing import List, Tuple

Row = Tuple[str, str, Tuple[str, str, str]]

BINDINGS: List[Row] = [
    ("GET", "https://API.Example.com/v1/payments?limit=10", ("GET", "api.example.com", "/v1/payments?limit=10")),
    ("get", "https://api.example.com:443/v1", ("GET", "api.example.com", "/v1")),
    ("GET", "http://api.example.com:80/", ("GET", "api.example.com", "/")),
    ("GET", "http://api.example.com:443/", ("GET", "api.example.com:443", "/")),
    ("GET", "https://api.example.com:8443", ("GET", "api.example.com:8443", "/")),
    ("GET", "https://api.example.com:08443/x", ("GET", "api.example.com:8443", "/x")),
    ("GET", "https://api.example.com", ("GET", "api.example.com", "/")),
    ("GET", "https://api.example.com/p?", ("GET", "api.example.com", "/p?")),
    ("GET", "https://api.example.com/p?#frag", ("GET", "api.example.com", "/p?")),
    ("GET", "https://api.example.com/p#frag?x", ("GET", "api.example.com", "/p")),
    ("GET", "https://api.example.com/a b/caf\u00e9?q=a b&r=\u00e9'x", ("GET", "api.example.com", "/a%20b/caf%C3%A9?q=a%20b&r=%C3%A9%27x")),
    ("GET", "https://api.example.com/x{y}`z\"<>", ("GET", "api.example.com", "/x%7By%7D%60z%22%3C%3E")),
    ("GET", "https://api.example.com/p~!$&'()*+,;=:@", ("GET", "api.example.com", "/p~!$&'()*+,;=:@")),
    ("GET", "https://api.example.com/p?^|{}`", ("GET", "api.example.com", "/p?^|{}`")),
    ("GET", "https://api.example.com/%7Buser%7D/%C3%A9", ("GET", "api.example.com", "/%7Buser%7D/%C3%A9")),
    ("GET", "https://api.example.com/q?a=1&b=%zz&c=%2F", ("GET", "api.example.com", "/q?a=1&b=%zz&c=%2F")),
    ("GET", "https://api.example.com/a/./b/../c", ("GET", "api.example.com", "/a/c")),
    ("GET", "https://api.example.com/a/%2e%2E/c/%2e", ("GET", "api.example.com", "/c/")),
    ("GET", "https://api.example.com/a/b/..", ("GET", "api.example.com", "/a/")),
    ("GET", "https://api.example.com/a\\b", ("GET", "api.example.com", "/a/b")),
    ("GET", "  https://api.example.com/x\n ", ("GET", "api.example.com", "/x")),
    ("GET", "HTTPS://api.example.com./x", ("GET", "api.example.com.", "/x")),
    ("GET", "http://[::1]:8080/x", ("GET", "[::1]:8080", "/x")),
    ("GET", "https://[0:0::1]/x", ("GET", "[::1]", "/x")),
    ("GET", "http://127.1:8081/x", ("GET", "127.0.0.1:8081", "/x")),
    ("GET", "http://0x7f.0.0.1/", ("GET", "127.0.0.1", "/")),
    ("delete", "https://api.example.com/v1/items/7", ("DELETE", "api.example.com", "/v1/items/7")),
    ("PATCH", "https://api.example.com/v1/items/7", ("PATCH", "api.example.com", "/v1/items/7")),
]

# Refused by both clients (exit 2): credentials, other schemes, a method that is not a token.
REFUSED: List[Tuple[str, str]] = [
    ("GET", "https://u:p@api.example.com/"),
    ("GET", "https://u@api.example.com/"),
    ("GET", "ftp://api.example.com/"),
    ("GET", "not a url"),
    ("GE T", "https://api.example.com/"),
    ("GET", "https://api.example.com:99999/"),
    # Paths the gateway would rewrite before the filter (the proof would not open) or refuse.
    ("GET", "https://api.example.com/p^q"),
    ("GET", "https://api.example.com/p|q"),
    ("GET", "https://api.example.com/%7Euser"),
    ("GET", "https://api.example.com/%41"),
    ("GET", "https://api.example.com/a//b"),
    ("GET", "https://api.example.com/a%2Fb"),
    ("GET", "https://api.example.com/%7Buser%7D/%zz/%C3%A9"),  # a malformed escape
]
