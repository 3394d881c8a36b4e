//! One function served by either local Lambda host a test can run it behind: a private
//! `cargo lambda watch` ([`Emulator`]) or AWS's Runtime Interface Emulator ([`Rie`]), so that a
//! test body written once runs behind both ([`HostKind`] picks which).
//!
//! The two differ where a poller in front of them must differ too: the RIE serves its one
//! function under the name [`RIE_FUNCTION`] whatever the binary, and one invocation at a time
//! (a second concurrent one crashes it), so a mapping invoking it has `max_concurrency = 1`;
//! [`FunctionHost::mapping_config`] writes both in.
//!
//! ```no_run
//! use kafka_lambda_tests::{HostKind, Poller};
//!
//! fn delivers(kind: HostKind) {
//!     let host = kind.start("es-etl-poller", "es-etl", &[("ES_ADDRESS", "http://127.0.0.1:9200")]);
//!     let config = host.mapping_config("es-etl", "error-logs", "batch_size = 5");
//!     let _poller = Poller::start("es-etl", &config);
//!     // ... what the function did, then `host.log_text()` in a failure message.
//! }
//! ```

use crate::{Emulator, Invocation, RIE_FUNCTION, Rie, mapping_config};

/// Which host a test runs its function behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A private `cargo lambda watch` ([`Emulator`]).
    CargoLambdaWatch,
    /// AWS's Runtime Interface Emulator ([`Rie`]).
    RuntimeInterfaceEmulator,
}

impl HostKind {
    /// Starts the binary of `package` (named like it) behind this kind of host, with `env` as
    /// the function's configuration; `name` names the `cargo lambda watch` log file.
    ///
    /// # Panics
    ///
    /// As [`Emulator::start`] and [`Rie::start`].
    pub fn start(self, name: &str, package: &str, env: &[(&str, &str)]) -> FunctionHost {
        match self {
            HostKind::CargoLambdaWatch => FunctionHost::start_cargo_lambda(name, package, env),
            HostKind::RuntimeInterfaceEmulator => FunctionHost::start_rie(package, package, env),
        }
    }
}

/// A running host with one function behind it, stopped on drop.
#[derive(Debug)]
pub enum FunctionHost {
    /// A private `cargo lambda watch`, serving every function of the workspace by its name.
    CargoLambdaWatch(Emulator),
    /// AWS's Runtime Interface Emulator, serving one binary as [`RIE_FUNCTION`].
    RuntimeInterfaceEmulator(Rie),
}

impl FunctionHost {
    /// A private `cargo lambda watch` ([`Emulator::start`]) that has built `package`, named
    /// `name` in its log file's name, with `env` as the functions' configuration.
    ///
    /// # Panics
    ///
    /// As [`Emulator::start`].
    pub fn start_cargo_lambda(name: &str, package: &str, env: &[(&str, &str)]) -> FunctionHost {
        FunctionHost::CargoLambdaWatch(Emulator::start(name, &[package], env))
    }

    /// The binary `bin` of `package` behind a new Runtime Interface Emulator ([`Rie::start`]),
    /// with `env` added to its environment.
    ///
    /// # Panics
    ///
    /// As [`Rie::start`].
    pub fn start_rie(package: &str, bin: &str, env: &[(&str, &str)]) -> FunctionHost {
        FunctionHost::RuntimeInterfaceEmulator(Rie::start(package, bin, env))
    }

    /// Which kind of host this is.
    pub fn kind(&self) -> HostKind {
        match self {
            FunctionHost::CargoLambdaWatch(_) => HostKind::CargoLambdaWatch,
            FunctionHost::RuntimeInterfaceEmulator(_) => HostKind::RuntimeInterfaceEmulator,
        }
    }

    /// The base URL of the invoke API, for the poller's `lambda.endpoint_url`.
    pub fn endpoint(&self) -> &str {
        match self {
            FunctionHost::CargoLambdaWatch(emulator) => emulator.endpoint(),
            FunctionHost::RuntimeInterfaceEmulator(rie) => rie.endpoint(),
        }
    }

    /// The name the function `default` answers to at [`FunctionHost::endpoint`]: `default`
    /// under `cargo lambda watch`, [`RIE_FUNCTION`] behind the RIE, whatever its binary.
    pub fn function_name<'a>(&self, default: &'a str) -> &'a str {
        match self {
            FunctionHost::CargoLambdaWatch(_) => default,
            FunctionHost::RuntimeInterfaceEmulator(_) => RIE_FUNCTION,
        }
    }

    /// The lines a poller's `[[mapping]]` needs to invoke this host: none for
    /// `cargo lambda watch`; `max_concurrency = 1` for the RIE, which serves one invocation at
    /// a time (a second one sent while the first runs crashes it).
    pub fn poller_settings(&self) -> &'static str {
        match self {
            FunctionHost::CargoLambdaWatch(_) => "",
            FunctionHost::RuntimeInterfaceEmulator(_) => "max_concurrency = 1",
        }
    }

    /// [`mapping_config`] for one mapping `topic` → `function` on this host: the function's
    /// name here ([`FunctionHost::function_name`]), its endpoint, and `mapping_settings`
    /// followed by [`FunctionHost::poller_settings`]. `mapping_settings` must not set what
    /// those set, and must end in the `[[mapping]]` table itself (no sub-table).
    pub fn mapping_config(&self, function: &str, topic: &str, mapping_settings: &str) -> String {
        mapping_config(
            self.function_name(function),
            topic,
            self.endpoint(),
            &format!("{mapping_settings}\n{}", self.poller_settings()),
        )
    }

    /// What the host and its function printed so far.
    pub fn log_text(&self) -> String {
        match self {
            FunctionHost::CargoLambdaWatch(emulator) => emulator.log_text(),
            FunctionHost::RuntimeInterfaceEmulator(rie) => rie.log_text(),
        }
    }

    /// Invokes the function `function` (its name under `cargo lambda watch`; the RIE has only
    /// its one) synchronously with `payload` and returns whatever it answered.
    ///
    /// # Panics
    ///
    /// As [`Emulator::invoke`] and [`Rie::invoke`].
    pub fn invoke(&self, function: &str, payload: impl AsRef<[u8]>) -> Invocation {
        match self {
            FunctionHost::CargoLambdaWatch(emulator) => emulator.invoke(function, payload),
            FunctionHost::RuntimeInterfaceEmulator(rie) => rie.invoke(payload),
        }
    }
}
