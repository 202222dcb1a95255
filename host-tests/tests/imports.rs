//! Imports: the host provides everything the built modules import, and names what it lacks.

mod common;

use autoid_host_tests::{FilterModule, HostError};

#[test]
fn built_modules_import_only_what_the_host_provides() {
    for module in [common::floor(), common::probe()] {
        let imports = module.imports();
        println!("{imports:#?}");
        assert!(
            imports
                .iter()
                .any(|i| i == "env::proxy_get_header_map_value")
        );
        // Building checks every import; any gap would be a MissingImports error.
        module.gateway().build().unwrap();
    }
}

/// A module importing `env::<name>` (a function `() -> ()`), encoded by hand (no `wat` here).
fn module_importing(names: &[&str]) -> Vec<u8> {
    let mut imports = vec![names.len() as u8];
    for name in names {
        imports.push(3);
        imports.extend_from_slice(b"env");
        imports.push(name.len() as u8);
        imports.extend_from_slice(name.as_bytes());
        imports.extend_from_slice(&[0x00, 0x00]); // a function of type 0
    }
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]); // type section: () -> ()
    bytes.push(0x02);
    bytes.push(imports.len() as u8);
    bytes.extend(imports);
    bytes
}

#[test]
fn missing_imports_are_named() {
    let module = FilterModule::from_bytes(&module_importing(&[
        "proxy_log",
        "proxy_teleport",
        "proxy_fly",
    ]))
    .unwrap();
    let err = module.gateway().build().unwrap_err();
    let HostError::MissingImports { names } = &err else {
        panic!("{err:?}")
    };
    // proxy_log exists but with another signature, so it is reported too.
    assert!(
        names.contains(&"env::proxy_teleport".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"env::proxy_fly".to_owned()), "{names:?}");
    assert!(err.to_string().contains("env::proxy_teleport"), "{err}");
}
