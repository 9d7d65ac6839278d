//! The plugin development kit: implement [`Plugin`] for a type and name it in [`plugin!`]; the
//! result, built with `cargo build --release --target wasm32-wasip2`, is a component the gateway
//! loads from `wasm_plugins_path`. The contract itself is `wit/plugin.wit`.

wit_bindgen::generate!({
    world: "plugin-component",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export_component",
    default_bindings_module: "gateway_pdk",
});

/// Set by the gateway's build to a digest of `wit/`, so a contract change rebuilds this crate.
const _WIT_DIGEST: Option<&str> = option_env!("GATEWAY_WIT_HASH");

pub use gateway::api::host;
pub use gateway::api::http::{Request, Response};
pub use gateway::api::types::{Descriptor, Exit, FieldError, Flow, LogLevel, Phase, Protocol};

/// A plugin: what it is, how it checks and takes its configuration, and what it does in the
/// phases it declares in [`Plugin::descriptor`] (the others are never called).
pub trait Plugin: Sized + 'static {
    /// Name, version, priority (higher runs first), phases and protocols.
    fn descriptor() -> Descriptor;

    /// Checks a configuration (JSON) when a plugin entity is written, and returns it with the
    /// defaults filled in. List every problem: the Admin API shows them all.
    fn check_config(config: &str) -> Result<String, Vec<FieldError>> {
        Ok(config.to_string())
    }

    /// Builds an instance for a checked configuration, once per configuration version.
    fn configure(config: &str) -> Result<Self, String>;

    fn rewrite(&self, _req: &Request) -> Result<Flow, String> {
        Ok(Flow::Proceed)
    }

    fn access(&self, _req: &Request) -> Result<Flow, String> {
        Ok(Flow::Proceed)
    }

    fn header_filter(&self, _req: &Request, _res: &Response) -> Result<(), String> {
        Ok(())
    }

    fn body_filter(&self, _res: &Response, chunk: Vec<u8>, _eof: bool) -> Result<Vec<u8>, String> {
        Ok(chunk)
    }

    fn log(&self, _req: &Request, _res: &Response) {}
}

/// Writes to the gateway's log, tagged with the plugin's name.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

/// Exports `$plugin` (a type implementing [`Plugin`]) as the component's plugin.
#[macro_export]
macro_rules! plugin {
    ($plugin:ty) => {
        struct __GatewayPlugin;

        impl $crate::exports::gateway::api::plugin::Guest for __GatewayPlugin {
            type Instance = __GatewayInstance;

            fn metadata() -> $crate::Descriptor {
                <$plugin as $crate::Plugin>::descriptor()
            }

            fn check_config(config: String) -> Result<String, Vec<$crate::FieldError>> {
                <$plugin as $crate::Plugin>::check_config(&config)
            }
        }

        struct __GatewayInstance($plugin);

        impl $crate::exports::gateway::api::plugin::GuestInstance for __GatewayInstance {
            fn configure(config: String) -> Result<$crate::exports::gateway::api::plugin::Instance, String> {
                <$plugin as $crate::Plugin>::configure(&config)
                    .map(|p| $crate::exports::gateway::api::plugin::Instance::new(__GatewayInstance(p)))
            }

            fn rewrite(&self, req: &$crate::Request) -> Result<$crate::Flow, String> {
                $crate::Plugin::rewrite(&self.0, req)
            }

            fn access(&self, req: &$crate::Request) -> Result<$crate::Flow, String> {
                $crate::Plugin::access(&self.0, req)
            }

            fn header_filter(&self, req: &$crate::Request, res: &$crate::Response) -> Result<(), String> {
                $crate::Plugin::header_filter(&self.0, req, res)
            }

            fn body_filter(&self, res: &$crate::Response, chunk: Vec<u8>, eof: bool) -> Result<Vec<u8>, String> {
                $crate::Plugin::body_filter(&self.0, res, chunk, eof)
            }

            fn log(&self, req: &$crate::Request, res: &$crate::Response) {
                $crate::Plugin::log(&self.0, req, res)
            }
        }

        $crate::export_component!(__GatewayPlugin with_types_in $crate);
    };
}
