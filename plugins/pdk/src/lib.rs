//! The plugin development kit: implement [`Plugin`] for a type and name it in [`plugin!`]; the
//! result, built with `cargo build --release --target wasm32-wasip2`, is a component the gateway
//! loads from `wasm_plugins_path`. The contract itself is `wit/plugin.wit`. A plugin's configuration
//! is a serde type: the kit reads, checks and fills it in (see [`config`]).

pub mod auth;
pub mod config;

wit_bindgen::generate!({
    world: "plugin-component",
    path: "../../wit",
    pub_export_macro: true,
    export_macro_name: "export_component",
    default_bindings_module: "gateway_pdk",
    additional_derives: [PartialEq],
});

/// Set by the gateway's build to a digest of `wit/`, so a contract change rebuilds this crate.
const _WIT_DIGEST: Option<&str> = option_env!("GATEWAY_WIT_HASH");

pub use config::HeaderName;
pub use gateway::api::host;
pub use gateway::api::http::{Request, Response};
pub use gateway::api::types::{
    Body, CallIds, ConsumerInfo, Credential, Descriptor, EntityRef, Exit, FieldError, Flow, LogLevel, Phase,
    PluginEntity, Protocol,
};

/// A plugin: what it is, its configuration, and what it does in the phases it declares in
/// [`Plugin::PHASES`] (the others are never called). Its version is its crate's.
pub trait Plugin: Sized + 'static {
    /// Kong's plugin name: lower-case letters, digits and `-`.
    const NAME: &'static str;
    /// Higher runs first (Kong's `PRIORITY`).
    const PRIORITY: i32;
    const PHASES: &'static [Phase];
    /// Kong's default for plugins: every HTTP protocol.
    const PROTOCOLS: &'static [Protocol] = &[Protocol::Grpc, Protocol::Grpcs, Protocol::Http, Protocol::Https];
    /// Whether a plugin entity may be scoped to a consumer. `false` is Kong's `no_consumer`, for
    /// plugins that run before a consumer is known (authentication) or that a consumer cannot
    /// sensibly change (`cors`): such an entity is refused when written.
    const CONSUMER_SCOPE: bool = true;

    /// The configuration: a serde type with `#[serde(default, deny_unknown_fields)]` and a
    /// `Default` holding the defaults. The kit checks a plugin entity's `config` by reading it into
    /// this type (every problem reported at its field's path, relative to `config`), then
    /// [`Plugin::validate`]; it answers with the configuration written back, defaults filled in.
    type Config: serde::de::DeserializeOwned + serde::Serialize;

    /// Checks across fields, or beyond what the types say, on a configuration that reads. Paths are
    /// relative to `config`; an empty path means the configuration as a whole.
    fn validate(_config: &Self::Config) -> Vec<FieldError> {
        Vec::new()
    }

    /// Builds an instance for a checked configuration, once per configuration version.
    fn configure(config: Self::Config) -> Result<Self, String>;

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

/// An id from the contract's `uuid` shape (`host::ids`) in the form
/// the Admin API shows: lower-case hex, hyphenated.
pub fn uuid_string((high, low): (u64, u64)) -> String {
    let mut out = String::with_capacity(36);
    let bytes = (u128::from(high) << 64 | u128::from(low)).to_be_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        push_hex(&mut out, *b);
    }
    out
}

/// One byte as two lower-case hexadecimal digits.
fn push_hex(out: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(char::from(DIGITS[usize::from(b >> 4)]));
    out.push(char::from(DIGITS[usize::from(b & 0xf)]));
}

/// Appends `n` in decimal, without the formatting machinery (a plugin's hot path writes numbers
/// into headers and keys on every request).
pub fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        out.push(char::from(*d));
    }
}

/// Appends `n` as Lua writes a number (`tostring`, and cjson's default precision: C's `%.14g`):
/// 14 significant digits, no trailing zeros, an exponent (`1e+14`, `1e-05`) below 1e-4 and from
/// 1e14 up. Whole numbers below 1e14, the common case, go through [`push_int`] and allocate
/// nothing.
pub fn push_lua_number(out: &mut String, n: f64) {
    const DIGITS: i32 = 14;
    if n.fract() == 0.0 && n.abs() < 1e14 {
        if n == 0.0 && n.is_sign_negative() {
            out.push('-');
        }
        push_int(out, n as i64);
        return;
    }
    if !n.is_finite() {
        out.push_str(if n.is_nan() {
            "nan"
        } else if n > 0.0 {
            "inf"
        } else {
            "-inf"
        });
        return;
    }
    // Rounded to 14 significant digits first: the exponent is the rounded number's.
    let scientific = format!("{:.*e}", (DIGITS - 1) as usize, n);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..DIGITS).contains(&exponent) {
        out.push_str(trim_zeros(mantissa));
        out.push_str(if exponent < 0 { "e-" } else { "e+" });
        if exponent.abs() < 10 {
            out.push('0');
        }
        push_int(out, i64::from(exponent.abs()));
        return;
    }
    let decimals = usize::try_from(DIGITS - 1 - exponent).unwrap_or(0);
    out.push_str(trim_zeros(&format!("{n:.decimals$}")));
}

/// `1.500` → `1.5`, `2.000` → `2`; a number without a point stays.
fn trim_zeros(number: &str) -> &str {
    if number.contains('.') { number.trim_end_matches('0').trim_end_matches('.') } else { number }
}

/// Bytes as lower-case hexadecimal (a digest as Kong prints it).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_hex(&mut out, *b);
    }
    out
}

/// Kong's `kong.response.error(status, message, headers)`: ends the request with the node's own
/// error answer (formatted as the client's `Accept` asks, with the node's templates and the
/// request id; `None`: Kong's text for the status) and `headers` added (a `WWW-Authenticate`
/// challenge). Fails for a status outside 400 to 599.
pub fn error_answer(
    req: &Request,
    status: u16,
    message: Option<&str>,
    headers: impl IntoIterator<Item = (String, String)>,
) -> Result<Flow, String> {
    let mut exit = host::error_answer(req, status, message)?;
    for (name, value) in headers {
        // A plugin's own `Content-Type` replaces the host's (one header, not two).
        if name.eq_ignore_ascii_case("content-type") {
            exit.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        }
        exit.headers.push((name, value));
    }
    Ok(Flow::Respond(exit))
}

/// Writes to the gateway's log, tagged with the plugin's name.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

#[doc(hidden)]
pub fn __descriptor<P: Plugin>(version: &str) -> Descriptor {
    Descriptor {
        name: P::NAME.into(),
        version: version.into(),
        priority: P::PRIORITY,
        phases: P::PHASES.to_vec(),
        protocols: P::PROTOCOLS.to_vec(),
        consumer_scope: P::CONSUMER_SCOPE,
        // The configuration an empty `config` reads as, before `validate` (which may refuse it).
        default_config: serde_json::from_str::<P::Config>("{}")
            .ok()
            .and_then(|config| serde_json::to_string(&config).ok())
            .unwrap_or_else(|| "{}".into()),
    }
}

#[doc(hidden)]
pub fn __check_config<P: Plugin>(json: &str) -> Result<String, Vec<FieldError>> {
    config::check(json, P::validate)
}

#[doc(hidden)]
pub fn __configure<P: Plugin>(json: &str) -> Result<P, String> {
    P::configure(config::parse_valid(json, P::validate).map_err(|errors| config::describe(&errors))?)
}

/// Exports `$plugin` (a type implementing [`Plugin`]) as the component's plugin.
#[macro_export]
macro_rules! plugin {
    ($plugin:ty) => {
        struct __GatewayPlugin;

        impl $crate::exports::gateway::api::plugin::Guest for __GatewayPlugin {
            type Instance = __GatewayInstance;

            fn metadata() -> $crate::Descriptor {
                $crate::__descriptor::<$plugin>(env!("CARGO_PKG_VERSION"))
            }

            fn check_config(config: String) -> Result<String, Vec<$crate::FieldError>> {
                $crate::__check_config::<$plugin>(&config)
            }
        }

        struct __GatewayInstance($plugin);

        impl $crate::exports::gateway::api::plugin::GuestInstance for __GatewayInstance {
            fn configure(config: String) -> Result<$crate::exports::gateway::api::plugin::Instance, String> {
                $crate::__configure::<$plugin>(&config)
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

#[cfg(test)]
mod tests {
    #[test]
    fn uuid_numbers_print_as_the_admin_api_shows_ids() {
        let id = (0x0123_4567_89ab_cdef_u64, 0xfedc_ba98_7654_3210_u64);
        assert_eq!(super::uuid_string(id), "01234567-89ab-cdef-fedc-ba9876543210");
        assert_eq!(super::uuid_string((0, 1)), "00000000-0000-0000-0000-000000000001");
        assert_eq!(super::uuid_string((u64::MAX, u64::MAX)), "ffffffff-ffff-ffff-ffff-ffffffffffff");
    }

    #[test]
    fn numbers_print_as_lua_prints_them() {
        for (n, lua) in [
            (42.0, "42"),
            (-1500.0, "-1500"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1.1 - 1.0, "0.1"),
            (2.5, "2.5"),
            (std::f64::consts::PI, "3.1415926535898"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (99_999_999_999_999.0, "99999999999999"),
            (1e14, "1e+14"),
            (12_345_678_901_234_567.0, "1.2345678901235e+16"),
            (99_999_999_999_999.5, "1e+14"),
            (1e300, "1e+300"),
            (-2.5e-300, "-2.5e-300"),
            (f64::INFINITY, "inf"),
        ] {
            let mut out = String::new();
            super::push_lua_number(&mut out, n);
            assert_eq!(out, lua, "{n:e}");
        }
    }

    /// C's own `%.14g` of `n`, which Lua's `tostring` and cjson call.
    fn c_g14(n: f64) -> String {
        let mut buffer = [0u8; 64];
        // SAFETY: the buffer is writable for its length, which snprintf is told; the format takes
        // exactly one double.
        let written = unsafe { libc::snprintf(buffer.as_mut_ptr().cast(), buffer.len(), c"%.14g".as_ptr(), n) };
        String::from_utf8(buffer[..usize::try_from(written).unwrap()].to_vec()).unwrap()
    }

    proptest::proptest! {
        #[test]
        fn numbers_print_as_c_prints_them(bits in proptest::prelude::any::<u64>()) {
            let n = f64::from_bits(bits);
            proptest::prop_assume!(n.is_finite());
            let mut out = String::new();
            super::push_lua_number(&mut out, n);
            proptest::prop_assert_eq!(out, c_g14(n), "{:e}", n);
        }

        #[test]
        fn short_decimals_print_as_c_prints_them(mantissa in -10_000_000i64..10_000_000, exponent in -12i32..20) {
            let n = mantissa as f64 * 10f64.powi(exponent - 6);
            let mut out = String::new();
            super::push_lua_number(&mut out, n);
            proptest::prop_assert_eq!(out, c_g14(n), "{:e}", n);
        }
    }

    #[test]
    fn integers_print_as_display_does() {
        for n in [0, 1, -1, 9, 10, 1_709_214_330, i64::MAX, i64::MIN, -1_000_000] {
            let mut out = "x".to_string();
            super::push_int(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }
}
