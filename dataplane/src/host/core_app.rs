//! [`HostApp`]: what runs on each core of `dataplane run`, wrapping the hosted
//! service's application: in-process handlers, or a bridge to applications attached over
//! shared memory ([`CoreApp`]). Between bursts (once per pass, in `poll`) it takes new ANF
//! tables from its reload channel (`try_recv`, no lock) and acknowledges them; around
//! each request it records the latency from the pass that received it to the response
//! being handed to the transport, in a histogram that it hands to the control thread
//! with each periodic snapshot (moved through a channel in exchange for an emptied one:
//! no copy, no allocation, no lock on the core). Its statistics carry the element
//! counters.
//!
//! It must not block, lock or allocate per request.

use std::marker::PhantomData;
use std::sync::Arc;

use crossbeam::channel::{Receiver, Sender};

use crate::app::{BridgeStats, ShmClientBridge, ShmServerBridge};
use crate::engine::{Answer, App, Clock, Peer, SessionEvent};
use crate::stats::LatencyHistogram;
use crate::transport::{Endpoint, RequestRef, RpcError, RpcId, SessionId};

use super::service::HostedService;

/// New tables for every core; `generation` identifies the reload.
pub struct Reload<T> {
    pub generation: u64,
    pub tables: Arc<T>,
}

/// A core applied reload `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadAck {
    pub core: usize,
    pub generation: u64,
}

/// The channels between one core's [`HostApp`] and the control thread.
pub struct CoreLinks<T> {
    /// New tables (control → core).
    pub reloads: Receiver<Reload<T>>,
    /// Reload acknowledgements (core → control).
    pub acks: Sender<ReloadAck>,
    /// Filled histograms, with the core index (core → control).
    pub latency_out: Sender<(usize, LatencyHistogram)>,
    /// Emptied histograms to record into next (control → core).
    pub latency_back: Receiver<LatencyHistogram>,
}

/// How often a core hands its latency histogram over (as its counters are published).
pub const LATENCY_HANDOFF_NS: u64 = crate::engine::core::PUBLISH_EVERY_NS;

/// One element's verdict counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ElementStat {
    pub element: &'static str,
    pub forwarded: u64,
    pub dropped: u64,
    pub replied: u64,
}

/// A hosted core's application counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HostCoreStats<St> {
    /// The in-process application's counters (`None` when applications are attached).
    pub app: Option<St>,
    /// The shared-memory bridge's counters (`None` in-process).
    pub bridge: Option<BridgeStats>,
    pub elements: Vec<ElementStat>,
    /// Reloads applied, and the generation of the tables in use (0: the initial ones).
    pub reloads: u64,
    pub generation: u64,
}

/// Passes during which the core's clock offset is measured.
const CALIBRATION_PASSES: u32 = 10_000;

/// What a hosted core runs.
pub enum CoreApp<S: HostedService> {
    /// The service's handlers, on the core.
    InProcess(S::App),
    /// The service's ANF chain, in front of attached server applications.
    Serve(ShmServerBridge<S::Chain>),
    /// Attached client applications' calls, to the configured server.
    Call(ShmClientBridge),
}

/// Calls `$body` with the application whatever its kind.
macro_rules! each {
    ($app:expr, $a:ident => $body:expr) => {
        match $app {
            CoreApp::InProcess($a) => $body,
            CoreApp::Serve($a) => $body,
            CoreApp::Call($a) => $body,
        }
    };
}

/// The per-core wrapper around a hosted service's application.
pub struct HostApp<S: HostedService> {
    core: usize,
    inner: CoreApp<S>,
    links: CoreLinks<S::Tables>,
    /// Our clock, and its offset from the core's (which stamps `now`): the smallest
    /// `ours - core's` seen at the top of `poll`.
    clock: Clock,
    offset: i64,
    calibrating: u32,
    /// Request arrival (the pass that received it) → response handed to the transport,
    /// since the last handoff.
    latency: LatencyHistogram,
    handed_at: u64,
    reloads: u64,
    generation: u64,
    _service: PhantomData<fn() -> S>,
}

impl<S: HostedService> HostApp<S> {
    pub fn new(core: usize, inner: CoreApp<S>, links: CoreLinks<S::Tables>) -> Self {
        HostApp {
            core,
            inner,
            links,
            clock: Clock::new(),
            offset: i64::MAX,
            calibrating: CALIBRATION_PASSES,
            latency: LatencyHistogram::new(),
            handed_at: 0,
            reloads: 0,
            generation: 0,
            _service: PhantomData,
        }
    }

    pub fn inner(&self) -> &CoreApp<S> {
        &self.inner
    }

    /// The latencies recorded since the last handoff (for the final report).
    pub fn take_latency(&mut self) -> LatencyHistogram {
        self.collect_bridge_latency();
        std::mem::take(&mut self.latency)
    }

    /// Moves what an attached-server bridge timed into this core's histogram.
    fn collect_bridge_latency(&mut self) {
        if let CoreApp::Serve(b) = &mut self.inner {
            b.drain_latency_into(&mut self.latency);
        }
    }

    /// Hands the histogram to the control thread if it has an empty one to give back
    /// and room to take this one; otherwise keeps recording into the same one.
    fn hand_off_latency(&mut self) {
        self.collect_bridge_latency();
        if self.latency.is_empty() || self.links.latency_out.is_full() {
            return;
        }
        let Ok(fresh) = self.links.latency_back.try_recv() else {
            return;
        };
        let full = std::mem::replace(&mut self.latency, fresh);
        // The core is the only sender and the channel had room: this does not fail;
        // if the control thread is gone, the counts are of no use anyway.
        let _ = self.links.latency_out.try_send((self.core, full));
    }

    fn ours(&self) -> i64 {
        i64::try_from(self.clock.now()).unwrap_or(i64::MAX)
    }
}

impl<S: HostedService> App for HostApp<S> {
    type Stats = HostCoreStats<<S::App as App>::Stats>;

    // Latency is recorded here for requests answered on the core; an attached
    // application's answers (`Deferred`) are timed by the bridge and collected at each
    // handoff.

    fn on_request(
        &mut self,
        now: u64,
        req: RequestRef,
        peer: Peer,
        payload: &mut [u8],
        resp: &mut [u8],
    ) -> Answer {
        let answer = each!(&mut self.inner, a => a.on_request(now, req, peer, payload, resp));
        if !matches!(answer, Answer::Silent | Answer::Deferred) && self.offset != i64::MAX {
            let end = self.ours().saturating_sub(self.offset);
            let start = i64::try_from(now).unwrap_or(i64::MAX);
            self.latency
                .record(u64::try_from(end.saturating_sub(start)).unwrap_or(0));
        }
        answer
    }

    fn on_response(
        &mut self,
        now: u64,
        session: SessionId,
        rpc: RpcId,
        result: Result<&mut [u8], RpcError>,
    ) {
        each!(&mut self.inner, a => a.on_response(now, session, rpc, result))
    }

    fn on_session(&mut self, now: u64, event: SessionEvent) {
        each!(&mut self.inner, a => a.on_session(now, event))
    }

    fn poll(&mut self, now: u64, endpoint: &mut Endpoint<Peer>) -> bool {
        if self.calibrating > 0 {
            self.calibrating -= 1;
            let d = self
                .ours()
                .saturating_sub(i64::try_from(now).unwrap_or(i64::MAX));
            self.offset = self.offset.min(d);
        }
        while let Ok(r) = self.links.reloads.try_recv() {
            match &mut self.inner {
                CoreApp::InProcess(a) => S::reload(a, &r.tables),
                CoreApp::Serve(b) => S::reload_chain(b.hook_mut(), &r.tables),
                CoreApp::Call(_) => {}
            }
            self.reloads += 1;
            self.generation = r.generation;
            let _ = self.links.acks.try_send(ReloadAck {
                core: self.core,
                generation: r.generation,
            });
        }
        if now.saturating_sub(self.handed_at) >= LATENCY_HANDOFF_NS {
            self.handed_at = now;
            self.hand_off_latency();
        }
        each!(&mut self.inner, a => a.poll(now, endpoint))
    }

    fn stats(&self) -> Self::Stats {
        let (app, bridge, elements) = match &self.inner {
            CoreApp::InProcess(a) => (Some(a.stats()), None, S::elements(a)),
            CoreApp::Serve(b) => (None, Some(b.stats()), S::chain_elements(b.hook())),
            CoreApp::Call(b) => (None, Some(b.stats()), Vec::new()),
        };
        HostCoreStats {
            app,
            bridge,
            elements: elements
                .into_iter()
                .map(|(element, c)| ElementStat {
                    element,
                    forwarded: c.forwarded,
                    dropped: c.dropped,
                    replied: c.replied,
                })
                .collect(),
            reloads: self.reloads,
            generation: self.generation,
        }
    }
}
