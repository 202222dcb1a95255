//! nginx (`--target nginx`) in front of a [`Stack`]'s agent and upstream, shared by the suites
//! that need one.

use std::net::SocketAddr;
use std::process::Command;

use autoid_testkit::free_port;
use autoid_testkit::nginx::{self, Nginx};
use autoid_testkit::process::run;
use serde_json::json;

use super::{Stack, bin};

/// nginx in front of a [`Stack`]'s agent and upstream: the stack's API definitions (rendered
/// again with --target nginx, on ports of its own), the agent's `/v1/check` deciding with the
/// same filter configuration as the stack's Envoy ext_authz.
#[allow(dead_code)]
pub struct Front {
    pub nginx: Nginx,
    pub http: SocketAddr,
    pub https: SocketAddr,
}

impl Front {
    /// Renders the stack's definitions for nginx on free ports and starts it, asking the
    /// stack's agent (its check on: `Options::ext_authz`); its prefix and logs under the
    /// stack's directory.
    #[allow(dead_code)]
    pub fn start(s: &Stack) -> Front {
        let config = s.path("gateway-nginx");
        std::fs::create_dir_all(config.join("apis")).unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let https: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let mut gateway: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.path("gateway/gateway.json")).unwrap())
                .unwrap();
        gateway["listeners"]["http"]["port"] = json!(http.port());
        gateway["listeners"]["https"]["port"] = json!(https.port());
        std::fs::write(config.join("gateway.json"), gateway.to_string()).unwrap();
        for api in std::fs::read_dir(s.path("gateway/apis")).unwrap() {
            let api = api.unwrap().path();
            std::fs::copy(&api, config.join("apis").join(api.file_name().unwrap())).unwrap();
        }
        let rendered = s.path("nginx.conf");
        run(Command::new(bin("autoid").unwrap())
            .args(["gateway", "render", "--target", "nginx", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&rendered)
            .arg("--filter-config")
            .arg(s.path("filter-nginx.json")))
        .unwrap();
        // The agent decides with the stack's filter.json: the same definitions give the same
        // filter configuration whichever gateway asks.
        assert_eq!(
            std::fs::read_to_string(s.path("filter-nginx.json")).unwrap(),
            std::fs::read_to_string(s.path("filter.json")).unwrap()
        );
        let nginx = Nginx::start(
            &nginx::binary().unwrap(),
            &rendered,
            &s.path("nginx"),
            &[http, https],
        )
        .unwrap();
        Front { nginx, http, https }
    }
}
