//! `wasi:clocks/monotonic-clock`, replaced: the clock is frozen at zero and
//! every timer it hands out is already due.
//!
//! wasmtime-wasi's own timers sleep for real inside `wasi:io/poll#poll`, a host
//! call where neither fuel nor the epoch deadline applies: a plugin that calls
//! `std::thread::sleep` would hold its worker for as long as it asked. Here a
//! sleep returns at once; a plugin that loops on sleeping burns fuel and meets
//! its deadline like any other loop.

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Duration, Instant};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use crate::plugins::sandbox::CallState;

/// A timer that is always due.
struct Due;

#[wasmtime_wasi::async_trait]
impl Pollable for Due {
    async fn ready(&mut self) {}
}

/// The frozen clock's view of a call: only its resource table.
pub struct FrozenClock<'a> {
    table: &'a mut ResourceTable,
}

impl FrozenClock<'_> {
    fn due(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let timer = self.table.push(Due)?;
        subscribe(self.table, timer)
    }
}

impl monotonic_clock::Host for FrozenClock<'_> {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        Ok(0)
    }

    fn resolution(&mut self) -> wasmtime::Result<Instant> {
        Ok(1_000_000_000)
    }

    fn subscribe_instant(&mut self, _when: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        self.due()
    }

    fn subscribe_duration(&mut self, _for: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        self.due()
    }
}

struct HasFrozenClock;

impl HasData for HasFrozenClock {
    type Data<'a> = FrozenClock<'a>;
}

/// Links the frozen clock over whatever `wasi:clocks/monotonic-clock` the
/// linker already has (wasmtime-wasi's, which sleeps).
pub fn shadow_monotonic_clock(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<CallState, HasFrozenClock>(linker, |state| FrozenClock {
        table: &mut state.table,
    })?;
    linker.allow_shadowing(false);
    Ok(())
}
