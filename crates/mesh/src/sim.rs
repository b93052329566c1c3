//! BookSim2-style open-loop measurement: warm-up, sample periods,
//! convergence, drain of measured packets, latency-threshold abort.
//!
//! Semantics copied from BookSim2's `TrafficManager::_SingleSim` (latency
//! and throughput modes), as documented in `docs/validation.md`:
//! - statistics are cleared at the start of every even warm-up period (0
//!   and 2 with the default three) and when measurement starts; during
//!   warm-up every retired packet counts, afterwards only *measured*
//!   packets (created during measurement, or during the drain before it
//!   started, or queued when it started that BookSim2, which makes a
//!   source's packets lazily, would only then have made:
//!   [`Network::measure_queued`]);
//! - a run still warming up after `max_samples` periods is unstable, as
//!   BookSim2's ("Too many sample periods needed to converge");
//! - after each sample period the mean packet latency and the mean accepted
//!   rate are compared with the previous period's; measurement ends after 3
//!   consecutive periods changing by less than the thresholds, or when
//!   `max_samples` periods have run;
//! - latency mode aborts as "unstable" when the mean over the retired
//!   counted packets and every flit in flight (its packet's current age)
//!   passes `latency_thres`, at a period end and every 1000 cycles of the
//!   drain;
//! - latency mode then drains the measured packets with injection on;
//! - both modes finally empty the network with injection off, without the
//!   queued packets BookSim2 would not have made yet
//!   ([`Network::drop_unmade`]), until the last credit is back; measured
//!   packets that leave meanwhile count in the latency and hop statistics
//!   (in throughput mode those sent in the window's last cycles), not in
//!   the rates, which are the window's.

use serde::Serialize;

use crate::deadlock::DeadlockReport;
use crate::network::{Delivered, Network, NewPacket, NodeCounts};
use crate::stats::{Samples, Summary};
use crate::topology::PORTS;

/// A source of new packets, asked once per cycle in cycle order.
///
/// The driver may ask for cycle `t + 1` while cycle `t` is being
/// simulated ([`Lookahead`]: the calling thread's share of the cycle then
/// starts later, and the other threads take it over), so a source must be
/// open-loop: it may not depend on what the network delivers. It is asked
/// only for cycles whose packets the driver then enqueues, except after a
/// step that ends the run with a deadlock report.
pub trait TrafficSource {
    /// Append the packets created at cycle `t` to `out` (their `ctime` is
    /// `t`; the `tag` is overwritten by the driver).
    fn generate(&mut self, t: u64, out: &mut Vec<NewPacket>);
}

/// A [`TrafficSource`] driven one cycle ahead: the packets of cycle
/// `t + 1` can be generated while cycle `t` is simulated
/// ([`Network::step_with`]), so that with several threads the workers do
/// not wait for them. The packets, and the order the source is asked in,
/// are those of generating each cycle just before it.
pub struct Lookahead<'a> {
    src: &'a mut dyn TrafficSource,
    /// The packets of cycle `ready`, when `Some`.
    cur: Vec<NewPacket>,
    next: Vec<NewPacket>,
    ready: Option<u64>,
}

impl<'a> Lookahead<'a> {
    /// Drive `src`.
    pub fn new(src: &'a mut dyn TrafficSource) -> Self {
        Lookahead {
            src,
            cur: Vec::new(),
            next: Vec::new(),
            ready: None,
        }
    }

    /// The packets created at cycle `t`: generated now, unless they were
    /// generated alongside the previous cycle.
    pub fn packets(&mut self, t: u64) -> &mut Vec<NewPacket> {
        if self.ready != Some(t) {
            self.cur.clear();
            self.src.generate(t, &mut self.cur);
            self.ready = Some(t);
        }
        &mut self.cur
    }

    /// Simulate one cycle of `net`; with `ahead` (the caller will ask for
    /// the next cycle's [`Lookahead::packets`]), generate them alongside it.
    pub fn step(&mut self, net: &mut Network, ahead: bool) -> Result<(), Box<DeadlockReport>> {
        if !ahead {
            return net.step();
        }
        let t = net.now();
        let (src, next) = (&mut *self.src, &mut self.next);
        next.clear();
        net.step_with(|| src.generate(t + 1, next))?;
        std::mem::swap(&mut self.cur, &mut self.next);
        self.ready = Some(t + 1);
        Ok(())
    }
}

/// Measurement mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimMode {
    /// Latency mode: threshold abort and drain of measured packets.
    Latency,
    /// Throughput mode: no latency threshold and no drain with injection
    /// on; judged on its accepted rate.
    Throughput,
}

/// Sample-period control (BookSim2's keys of the same names).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimControl {
    /// Latency or throughput.
    pub sim_type: SimMode,
    /// Warm-up sample periods (0: until the warm-up thresholds hold).
    pub warmup_periods: u32,
    /// Cycles per sample period.
    pub sample_period: u64,
    /// Maximum sample periods in all.
    pub max_samples: u32,
    /// Mean latency (cycles) above which a latency run is unstable.
    pub latency_thres: f64,
    /// Relative latency change that ends warm-up (warmup_periods = 0 only).
    pub warmup_thres: f64,
    /// Relative accepted-rate change that ends warm-up.
    pub acc_warmup_thres: f64,
    /// Relative latency change counted as converged.
    pub stopping_thres: f64,
    /// Relative accepted-rate change counted as converged.
    pub acc_stopping_thres: f64,
}

impl Default for SimControl {
    fn default() -> Self {
        SimControl {
            sim_type: SimMode::Latency,
            warmup_periods: 3,
            sample_period: 1000,
            max_samples: 10,
            latency_thres: 500.0,
            warmup_thres: 0.05,
            acc_warmup_thres: 0.05,
            stopping_thres: 0.05,
            acc_stopping_thres: 0.05,
        }
    }
}

impl SimControl {
    /// Check the measurement keys: at least one sample period of at least
    /// one cycle, and thresholds that are finite and non-negative (a NaN
    /// threshold would silently never, or always, trigger).
    pub fn validate(&self) -> Result<(), crate::ConfigError> {
        let err = |key: &str, reason: String| {
            Err(crate::ConfigError::Other {
                key: key.into(),
                reason,
            })
        };
        if self.sample_period == 0 {
            return err("sample_period", "must be at least 1 cycle".into());
        }
        if self.max_samples == 0 {
            return err("max_samples", "must be at least 1 sample period".into());
        }
        for (key, v) in [
            ("latency_thres", self.latency_thres),
            ("warmup_thres", self.warmup_thres),
            ("acc_warmup_thres", self.acc_warmup_thres),
            ("stopping_thres", self.stopping_thres),
            ("acc_stopping_thres", self.acc_stopping_thres),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return err(key, format!("{v} is not a finite non-negative number"));
            }
        }
        Ok(())
    }
}

/// Outcome of a measured run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Converged (or ran out of sample periods) and drained.
    Ok,
    /// Latency passed `latency_thres`, or the run never finished warming
    /// up (BookSim: "Simulation unstable"); why: [`SimResult::unstable`].
    Unstable,
}

/// Why a run ended unstable. BookSim2 prints only "Simulation unstable,
/// ending ..." (or, for the second, "Too many sample periods needed to
/// converge" before it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Unstable {
    /// Latency mode: the mean latency passed `latency_thres`. As in
    /// BookSim2, the mean is over the counted packets retired since the
    /// statistics were last cleared (their latency) and every flit still in
    /// flight, measured or not (its packet's current age).
    LatencyThreshold {
        /// When it was checked: `"warm-up"` or `"measure"` (at a sample
        /// period's end) or `"drain"` (every 1000 cycles of the drain).
        phase: &'static str,
        /// The cycle of the check.
        cycle: u64,
        /// The mean that passed the threshold.
        mean_latency: f64,
        /// `latency_thres`.
        threshold: f64,
    },
    /// Still warming up after `max_samples` sample periods (BookSim2: "Too
    /// many sample periods needed to converge"): nothing was measured.
    NotWarmedUp {
        /// `max_samples`.
        sample_periods: u32,
    },
}

impl std::fmt::Display for Unstable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Unstable::LatencyThreshold {
                phase,
                cycle,
                mean_latency,
                threshold,
            } => write!(
                f,
                "mean packet latency {mean_latency:.3} passed latency_thres = {threshold} \
                 at cycle {cycle} ({phase})"
            ),
            Unstable::NotWarmedUp { sample_periods } => write!(
                f,
                "still warming up after max_samples = {sample_periods} sample periods \
                 (BookSim2: \"Too many sample periods needed to converge\")"
            ),
        }
    }
}

/// A mean and its sample count. Serialized with a `null` mean when empty.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MeanOnly {
    /// Number of samples.
    pub count: u64,
    /// Mean (0 when empty).
    pub mean: f64,
}

impl Serialize for MeanOnly {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = ser.serialize_struct("MeanOnly", 2)?;
        st.serialize_field("count", &self.count)?;
        st.serialize_field("mean", &(self.count > 0).then_some(self.mean))?;
        st.end()
    }
}

/// Rate summary over nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RateSummary {
    /// Mean over nodes (flits/node/cycle).
    pub avg: f64,
    /// Lowest node.
    pub min: f64,
    /// Node with the lowest rate.
    pub min_node: usize,
    /// Highest node.
    pub max: f64,
    /// Node with the highest rate.
    pub max_node: usize,
}

/// Results of [`run_measured`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimResult {
    /// Ok or unstable.
    pub status: Status,
    /// Why the run ended unstable (`None` exactly when `status` is ok).
    /// The figures below are then partial: the window's rates are 0 when
    /// the run stopped before the window closed, and the latencies are
    /// those of the packets retired by then; BookSim2 reports none.
    pub unstable: Option<Unstable>,
    /// Packet latency (creation to tail ejection), measured packets.
    pub packet_latency: Summary,
    /// Network latency (head leaves source queue to tail ejection).
    pub network_latency: Summary,
    /// Flit latency (each flit: injection to ejection); the engine keeps
    /// per-packet sums only, so no extremes or percentiles.
    pub flit_latency: MeanOnly,
    /// Routers traversed per packet (Manhattan hops + 1).
    pub hops: Summary,
    /// Injected flits per node per cycle over the measurement.
    pub injected: RateSummary,
    /// Accepted (ejected) flits per node per cycle over the measurement.
    pub accepted: RateSummary,
    /// Injected packets (heads sent into the network) per node per cycle
    /// over the measurement: BookSim2's injected packet rate.
    pub injected_packets: RateSummary,
    /// Accepted packets (tails ejected) per node per cycle over the
    /// measurement: BookSim2's accepted packet rate.
    pub accepted_packets: RateSummary,
    /// Offered flits per node per cycle over the measurement: the flits of
    /// the packets the sources created in the window, whether or not they
    /// left their source queue (not a BookSim2 statistic). Below saturation
    /// `accepted` tracks it within the few flits in flight at the window's
    /// ends, since both count the same random arrivals; at saturation the
    /// source queues grow and `accepted` falls behind it.
    pub offered: RateSummary,
    /// Cycles simulated in all.
    pub simulated_cycles: u64,
    /// Cycles of the measurement window.
    pub measured_cycles: u64,
    /// First cycle of the measurement window.
    pub measure_start: u64,
    /// Per output port (index r*5 + port): flits per cycle over the
    /// measurement window, all classes (empty for an unstable run).
    pub link_utilization: Vec<f64>,
    /// Flit traversals of router-to-router links in the whole run.
    pub flit_hops: u64,
}

#[derive(PartialEq, Clone, Copy)]
enum State {
    WarmingUp,
    Running,
    Draining,
}

struct Meas {
    plat: Samples,
    nlat: Samples,
    flat_sum: f64,
    flat_n: u64,
    hops: Samples,
    /// Flits of the packets delivered per destination node since the last
    /// clear (whole packets, counted at their tail).
    accepted: Vec<u64>,
    /// Packets accepted per destination node since the last clear.
    accepted_pkts: Vec<u64>,
    /// Flits of the packets created per source node since the last clear.
    offered: Vec<u64>,
    /// The network's per-node counters at the last clear.
    at_reset: NodeCounts,
    reset_time: u64,
}

impl Meas {
    fn new(n: usize) -> Self {
        Meas {
            plat: Samples::default(),
            nlat: Samples::default(),
            flat_sum: 0.0,
            flat_n: 0,
            hops: Samples::default(),
            accepted: vec![0; n],
            accepted_pkts: vec![0; n],
            offered: vec![0; n],
            at_reset: NodeCounts {
                injected_flits: vec![0; n],
                injected_packets: vec![0; n],
                ejecting_flits: vec![0; n],
            },
            reset_time: 0,
        }
    }
    fn clear(&mut self, now: u64, counts: NodeCounts) {
        self.plat.clear();
        self.nlat.clear();
        self.flat_sum = 0.0;
        self.flat_n = 0;
        self.hops.clear();
        self.accepted.iter_mut().for_each(|a| *a = 0);
        self.accepted_pkts.iter_mut().for_each(|a| *a = 0);
        self.offered.iter_mut().for_each(|a| *a = 0);
        self.at_reset = counts;
        self.reset_time = now;
    }
    /// Flits ejected per node since the last clear, counted one by one as
    /// BookSim2 does (`_accepted_flits`, incremented per flit read from the
    /// network): the delivered packets' flits, plus those of packets being
    /// ejected now, minus those of packets that were being ejected at the
    /// clear. (A packet in progress at the clear is either delivered since,
    /// and counted whole in `accepted`, or still in progress with at least
    /// as many flits: the difference is never negative.)
    fn accepted_flits(&self, ejecting_now: &[u64], out: &mut [u64]) {
        for (o, ((&a, &e), &e0)) in out.iter_mut().zip(
            self.accepted
                .iter()
                .zip(ejecting_now)
                .zip(&self.at_reset.ejecting_flits),
        ) {
            *o = a + e - e0;
        }
    }
    /// Mean over nodes of [`Meas::accepted_flits`] per cycle.
    fn accepted_avg(&self, now: u64, ejecting_now: &[u64]) -> f64 {
        let dt = (now - self.reset_time).max(1) as f64;
        let sum = |v: &[u64]| v.iter().sum::<u64>();
        let flits = sum(&self.accepted) + sum(ejecting_now) - sum(&self.at_reset.ejecting_flits);
        flits as f64 / self.accepted.len() as f64 / dt
    }
}

/// Per node, the counter's growth since the window's start: `now − at_reset`.
fn since(now: &[u64], at_reset: &[u64], out: &mut [u64]) {
    for (w, (a, b)) in out.iter_mut().zip(now.iter().zip(at_reset)) {
        *w = a - b;
    }
}

fn rate_summary(counts: &[u64], cycles: u64) -> RateSummary {
    let dt = cycles.max(1) as f64;
    let mut s = RateSummary {
        min: f64::MAX,
        ..Default::default()
    };
    for (n, &c) in counts.iter().enumerate() {
        let r = c as f64 / dt;
        s.avg += r;
        if r < s.min {
            s.min = r;
            s.min_node = n;
        }
        if r > s.max {
            s.max = r;
            s.max_node = n;
        }
    }
    s.avg /= counts.len().max(1) as f64;
    if counts.is_empty() {
        s.min = 0.0;
    }
    s
}

/// BookSim2's latency-threshold test (`_SingleSim`, at a sample period's
/// end and every 1000 cycles of the drain): the mean over the counted
/// packets retired since the statistics were last cleared (their latency)
/// and every flit in flight, measured or not ([`Network::in_flight_ages`]:
/// its packet's age). Returns that mean if it exceeds `thres`.
fn over_threshold(net: &Network, meas: &Meas, thres: f64) -> Option<f64> {
    let (age_sum, age_n) = net.in_flight_ages();
    let total = meas.plat.sum() + age_sum as f64;
    let cnt = meas.plat.count() as f64 + age_n as f64;
    let mean = total / cnt;
    (cnt > 0.0 && mean > thres).then_some(mean)
}

/// Run a BookSim2-style measurement of `net` driven by `src`. `progress` is
/// called every 1000 cycles with the current cycle and a phase name.
pub fn run_measured(
    net: &mut Network,
    src: &mut dyn TrafficSource,
    ctl: &SimControl,
    progress: &mut dyn FnMut(u64, &str),
) -> Result<SimResult, Box<DeadlockReport>> {
    run_measured_observed(net, src, ctl, progress, &mut |_| {})
}

/// [`run_measured`], also calling `on_delivered` for every packet the run
/// delivers (warm-up, measurement and drain alike), in delivery order. The
/// `tag` it sees is the driver's measured flag, not the source's.
pub fn run_measured_observed(
    net: &mut Network,
    src: &mut dyn TrafficSource,
    ctl: &SimControl,
    progress: &mut dyn FnMut(u64, &str),
    on_delivered: &mut dyn FnMut(&Delivered),
) -> Result<SimResult, Box<DeadlockReport>> {
    let n = net.topology().nodes();
    let mut meas = Meas::new(n);
    let mut state = State::WarmingUp;
    let mut src = Lookahead::new(src);
    let mut drain_time = u64::MAX;
    let mut generating = true;
    // Measured packets still outstanding: count and remaining flits with age.
    let mut measured_outstanding: u64 = 0;
    let mut link_at_start: Vec<u64> = Vec::new();
    let mut link_at_end: Vec<u64> = Vec::new();
    let mut window = (0u64, 0u64);
    let mut injected_window = vec![0u64; n];
    let mut accepted_window = vec![0u64; n];
    let mut injected_pkts_window = vec![0u64; n];
    let mut accepted_pkts_window = vec![0u64; n];
    let mut offered_window = vec![0u64; n];

    // One cycle. `look`: the next step generates too (it is in the same
    // sample period), so its packets may be generated alongside this cycle.
    #[allow(clippy::too_many_arguments)]
    let mut step = |net: &mut Network,
                    src: &mut Lookahead,
                    state: State,
                    meas: &mut Meas,
                    generating: bool,
                    drain_time: u64,
                    measured_outstanding: &mut u64,
                    look: bool|
     -> Result<(), Box<DeadlockReport>> {
        let t = net.now();
        if generating {
            let newp = src.packets(t);
            for p in newp.iter_mut() {
                if state != State::Draining {
                    meas.offered[p.src as usize] += p.size as u64;
                }
                let measured =
                    state == State::Running || (state == State::Draining && p.ctime < drain_time);
                p.tag = measured as u64;
                if measured {
                    *measured_outstanding += 1;
                }
            }
            net.enqueue_all(newp)
                .expect("traffic source produced an impossible packet");
        }
        src.step(net, look && generating)?;
        for d in net.drain_delivered() {
            on_delivered(&d);
            let counted = state == State::WarmingUp || d.tag == 1;
            if state != State::Draining {
                meas.accepted[d.dst as usize] += d.size as u64;
                meas.accepted_pkts[d.dst as usize] += 1;
            }
            if counted {
                meas.plat.add((d.atime - d.ctime) as f64);
                meas.nlat.add((d.atime - d.itime) as f64);
                meas.hops.add(d.hops as f64);
            }
            // BookSim2's flit latency (`_flat_stats`) takes every flit
            // retired since the statistics were last cleared, measured or
            // not, where its packet statistics take the counted packets
            // only. (Here a packet's flits count when its tail arrives.)
            meas.flat_sum += d.flit_latency_sum as f64;
            meas.flat_n += d.size as u64;
            if d.tag == 1 {
                *measured_outstanding -= 1;
            }
        }
        Ok(())
    };

    let mut total_phases = 0u32;
    let mut converged = 0u32;
    let mut clear_last = false;
    let mut prev_lat = 0.0f64;
    let mut prev_acc = 0.0f64;
    // Why the run ended unstable; `None` while it is not.
    let mut why = None;

    while total_phases < ctl.max_samples && (state != State::Running || converged < 3) {
        if clear_last || (state == State::WarmingUp && total_phases % 2 == 0) {
            clear_last = false;
            meas.clear(net.now(), net.node_counts());
            if state == State::Running {
                link_at_start = net.link_flits();
                window.0 = net.now();
            }
        }
        for i in 1..=ctl.sample_period {
            step(
                net,
                &mut src,
                state,
                &mut meas,
                generating,
                drain_time,
                &mut measured_outstanding,
                i < ctl.sample_period,
            )?;
            if net.now() % 1000 == 0 {
                progress(
                    net.now(),
                    if state == State::WarmingUp {
                        "warm-up"
                    } else {
                        "measure"
                    },
                );
            }
        }
        let cur_lat = meas.plat.mean();
        let cur_acc = meas.accepted_avg(net.now(), &net.node_counts().ejecting_flits);
        if ctl.sim_type == SimMode::Latency {
            if let Some(mean_latency) = over_threshold(net, &meas, ctl.latency_thres) {
                why = Some(Unstable::LatencyThreshold {
                    phase: if state == State::WarmingUp {
                        "warm-up"
                    } else {
                        "measure"
                    },
                    cycle: net.now(),
                    mean_latency,
                    threshold: ctl.latency_thres,
                });
                break;
            }
        }
        let dl = ((cur_lat - prev_lat) / cur_lat).abs();
        let da = ((cur_acc - prev_acc) / cur_acc).abs();
        match state {
            State::WarmingUp => {
                let warmed = if ctl.warmup_periods == 0 {
                    if ctl.sim_type == SimMode::Latency {
                        dl < ctl.warmup_thres && da < ctl.acc_warmup_thres
                    } else {
                        da < ctl.acc_warmup_thres
                    }
                } else {
                    total_phases + 1 >= ctl.warmup_periods
                };
                if warmed {
                    clear_last = true;
                    state = State::Running;
                    // Queued packets BookSim2 would only make from now on
                    // are measured, as there.
                    measured_outstanding += net.measure_queued(1);
                }
            }
            State::Running => {
                let ok = if ctl.sim_type == SimMode::Latency {
                    dl < ctl.stopping_thres && da < ctl.acc_stopping_thres
                } else {
                    da < ctl.acc_stopping_thres
                };
                converged = if ok { converged + 1 } else { 0 };
            }
            State::Draining => {}
        }
        prev_lat = cur_lat;
        prev_acc = cur_acc;
        total_phases += 1;
    }

    if why.is_none() && state == State::Running {
        // End of the measurement window.
        window.1 = net.now();
        let now = net.node_counts();
        since(
            &now.injected_flits,
            &meas.at_reset.injected_flits,
            &mut injected_window,
        );
        since(
            &now.injected_packets,
            &meas.at_reset.injected_packets,
            &mut injected_pkts_window,
        );
        meas.accepted_flits(&now.ejecting_flits, &mut accepted_window);
        accepted_pkts_window.copy_from_slice(&meas.accepted_pkts);
        offered_window.copy_from_slice(&meas.offered);
        if !link_at_start.is_empty() {
            link_at_end = net.link_flits();
        }
        state = State::Draining;
        drain_time = net.now();
        if ctl.sim_type == SimMode::Latency {
            let mut steps = 0u64;
            while measured_outstanding > 0 {
                step(
                    net,
                    &mut src,
                    state,
                    &mut meas,
                    generating,
                    drain_time,
                    &mut measured_outstanding,
                    false,
                )?;
                steps += 1;
                if steps % 1000 == 0 {
                    progress(net.now(), "drain");
                    if let Some(mean_latency) = over_threshold(net, &meas, ctl.latency_thres) {
                        why = Some(Unstable::LatencyThreshold {
                            phase: "drain",
                            cycle: net.now(),
                            mean_latency,
                            threshold: ctl.latency_thres,
                        });
                        break;
                    }
                }
            }
        }
        if why.is_none() {
            // Empty the network with injection off, as BookSim2's `Run`
            // ("Draining remaining packets", then until its credits are
            // back), without the packets it would not have made yet. The
            // measured packets that leave meanwhile still count (their
            // latency and hops, not the rates of the window above): in
            // throughput mode those of the window's last cycles; in
            // latency mode none are left.
            generating = false;
            measured_outstanding -= net.drop_unmade(1).1;
            while net.packets_outstanding() > 0 || !net.is_quiescent() {
                step(
                    net,
                    &mut src,
                    state,
                    &mut meas,
                    generating,
                    drain_time,
                    &mut measured_outstanding,
                    false,
                )?;
            }
            debug_assert_eq!(measured_outstanding, 0);
        }
    } else if why.is_none() {
        // Still warming up after `max_samples` periods: BookSim2 prints
        // "Too many sample periods needed to converge" and its run is
        // unstable (`_SingleSim` returns false). Nothing was measured.
        window.1 = net.now();
        why = Some(Unstable::NotWarmedUp {
            sample_periods: ctl.max_samples,
        });
    }

    let mcycles = window.1.saturating_sub(window.0);
    // Over the window only (an unstable run has none: no figures).
    let link_utilization = if link_at_start.is_empty() || link_at_end.is_empty() {
        Vec::new()
    } else {
        let c = net.num_classes();
        (0..n * PORTS)
            .map(|l| {
                let d: u64 = (0..c)
                    .map(|k| link_at_end[l * c + k] - link_at_start[l * c + k])
                    .sum();
                d as f64 / mcycles.max(1) as f64
            })
            .collect()
    };
    let flat = MeanOnly {
        count: meas.flat_n,
        mean: if meas.flat_n > 0 {
            meas.flat_sum / meas.flat_n as f64
        } else {
            0.0
        },
    };
    Ok(SimResult {
        status: if why.is_some() {
            Status::Unstable
        } else {
            Status::Ok
        },
        unstable: why,
        packet_latency: meas.plat.summary(),
        network_latency: meas.nlat.summary(),
        flit_latency: flat,
        hops: meas.hops.summary(),
        injected: rate_summary(&injected_window, mcycles),
        accepted: rate_summary(&accepted_window, mcycles),
        injected_packets: rate_summary(&injected_pkts_window, mcycles),
        accepted_packets: rate_summary(&accepted_pkts_window, mcycles),
        offered: rate_summary(&offered_window, mcycles),
        simulated_cycles: net.now(),
        measured_cycles: mcycles,
        measure_start: window.0,
        link_utilization,
        flit_hops: net.counters().flit_hops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetworkConfig;
    use crate::topology::MeshSpec;

    /// A `rows` × `cols` mesh with the default router.
    fn mesh_cfg(rows: usize, cols: usize) -> NetworkConfig {
        NetworkConfig {
            mesh: MeshSpec {
                rows,
                cols,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A source's packets, on class 1 from odd nodes and 0 from even ones.
    struct ClassBySource<S>(S);

    impl<S: TrafficSource> TrafficSource for ClassBySource<S> {
        fn generate(&mut self, t: u64, out: &mut Vec<NewPacket>) {
            let from = out.len();
            self.0.generate(t, out);
            for p in &mut out[from..] {
                p.class = (p.src % 2) as u8;
            }
        }
    }

    /// One cycle by hand, as the driver runs it: the source's packets of
    /// the cycle, then the step. Returns the packets delivered.
    fn step_by_hand(net: &mut Network, src: &mut dyn TrafficSource) -> Vec<Delivered> {
        let mut ps = Vec::new();
        src.generate(net.now(), &mut ps);
        net.enqueue_all(&ps).unwrap();
        net.step().unwrap();
        net.drain_delivered().collect()
    }

    /// Rates over nodes: mean, and the first node of the lowest and of
    /// the highest (ties keep the lower node number); no nodes give zeros,
    /// zero cycles count as one.
    #[test]
    fn rate_summary_takes_the_first_extreme_node() {
        let s = rate_summary(&[4, 1, 7, 1, 7], 2);
        let want = RateSummary {
            avg: 2.0,
            min: 0.5,
            min_node: 1,
            max: 3.5,
            max_node: 2,
        };
        assert_eq!(s, want);
        assert_eq!(rate_summary(&[], 5), RateSummary::default());
        assert_eq!(rate_summary(&[3, 1], 0).avg, 2.0);
    }

    /// The window's accepted flits: delivered packets, plus flits of
    /// packets ejecting now, minus those ejecting at the window's start,
    /// per node and as a mean per node and cycle.
    #[test]
    fn accepted_flits_count_partial_packets_at_both_edges() {
        let mut m = Meas::new(2);
        m.accepted = vec![6, 2];
        m.at_reset.ejecting_flits = vec![1, 0];
        m.reset_time = 10;
        let ejecting_now = [0, 3];
        let mut per_node = [0; 2];
        m.accepted_flits(&ejecting_now, &mut per_node);
        assert_eq!(per_node, [5, 5]);
        // 10 flits over 2 nodes and 4 cycles.
        assert_eq!(m.accepted_avg(14, &ejecting_now), 1.25);
        // A window of no cycles divides by one.
        assert_eq!(m.accepted_avg(10, &ejecting_now), 5.0);
        let mut grown = [0; 3];
        since(&[5, 7, 9], &[2, 7, 0], &mut grown);
        assert_eq!(grown, [3, 0, 9]);
    }

    /// Every node sends a `size`-flit packet every `every` cycles (nodes
    /// staggered), to a destination that moves with the cycle.
    struct Periodic {
        n: u32,
        size: u16,
        every: u64,
    }

    impl TrafficSource for Periodic {
        fn generate(&mut self, t: u64, out: &mut Vec<NewPacket>) {
            for s in 0..self.n {
                if (t + s as u64) % self.every == 0 {
                    out.push(NewPacket {
                        src: s,
                        dst: (s * 7 + t as u32 + 1) % self.n,
                        size: self.size,
                        class: 0,
                        ctime: t,
                        tag: 0,
                    });
                }
            }
        }
    }

    /// A run without traffic measures nothing, and every mean, rate and
    /// percentile says 0 (as documented), never NaN: it is stable and
    /// ends after `max_samples` periods (no change ever falls below a
    /// threshold: 0 / 0 is not below anything).
    #[test]
    fn a_silent_run_reports_zeros() {
        let mut net = Network::new(mesh_cfg(2, 2)).unwrap();
        let ctl = SimControl {
            warmup_periods: 1,
            sample_period: 50,
            max_samples: 4,
            ..Default::default()
        };
        let mut silent = Burst { n: 0 };
        let r = run_measured(&mut net, &mut silent, &ctl, &mut |_, _| {}).unwrap();
        assert_eq!(r.status, Status::Ok);
        assert_eq!((r.measure_start, r.measured_cycles), (50, 150));
        assert_eq!((r.flit_latency.count, r.flit_latency.mean), (0, 0.0));
        for s in [&r.packet_latency, &r.network_latency, &r.hops] {
            assert_eq!(s.count, 0);
            let all = [s.mean, s.min, s.max, s.p50, s.p95, s.p99];
            assert_eq!(all, [0.0; 6], "{s:?}");
        }
        assert!(r.accepted.avg == 0.0 && r.link_utilization.iter().all(|&u| u == 0.0));
    }

    /// BookSim2 counts accepted flits one by one as they leave the network,
    /// so packets cut by a window's edges count with the flits ejected
    /// inside it. The measurement window of a throughput run must hold
    /// exactly the flits the network ejected in it; counting whole packets
    /// at their tail would not (checked below, so that the configuration
    /// does cut packets). The run ends with the network quiescent; its
    /// link utilization is each output port's flits in the window, of
    /// both classes (even and odd sources send on different ones).
    #[test]
    fn accepted_flits_are_counted_one_by_one() {
        let cfg = || NetworkConfig {
            classes: crate::config::test_classes(&[("even", 2), ("odd", 2)]),
            ..mesh_cfg(4, 4)
        };
        let src = || {
            ClassBySource(Periodic {
                n: 16,
                size: 20,
                every: 45,
            })
        };
        let ctl = SimControl {
            sim_type: SimMode::Throughput,
            warmup_periods: 1,
            sample_period: 97,
            max_samples: 4,
            ..Default::default()
        };
        let mut net = Network::new(cfg()).unwrap();
        let r = run_measured(&mut net, &mut src(), &ctl, &mut |_, _| {}).unwrap();
        assert_eq!(r.status, Status::Ok);
        // The run empties the network, to its last credit.
        assert!(net.is_quiescent() && net.now() == r.simulated_cycles);
        let start = r.measure_start;
        let end = start + r.measured_cycles;
        assert!(start > 0 && r.measured_cycles > 0 && end < r.simulated_cycles);
        // The flits ejected by `start` and by `end`: the same run again,
        // by hand.
        let mut again = Network::new(cfg()).unwrap();
        let mut s = src();
        let mut ps = Vec::new();
        let mut ejected_at = |to: u64| {
            while again.now() < to {
                ps.clear();
                s.generate(again.now(), &mut ps);
                again.enqueue_all(&ps).unwrap();
                again.step().unwrap();
            }
            (again.counters().ejected_flits, again.link_flits())
        };
        let (e0, l0) = ejected_at(start);
        let (e1, l1) = ejected_at(end);
        let ejected = e1 - e0;
        let per_node_cycle = |x: f64| (x * 16.0 * r.measured_cycles as f64).round() as u64;
        assert_eq!(per_node_cycle(r.accepted.avg), ejected);
        assert_ne!(per_node_cycle(r.accepted_packets.avg) * 20, ejected);
        // Link utilization: each output port's flits in the window, both
        // classes, per cycle (`link_flits` has them per class).
        let in_window = |l: usize| l1[l] - l0[l];
        let util: Vec<f64> = (0..16 * 5)
            .map(|l| (in_window(2 * l) + in_window(2 * l + 1)) as f64 / r.measured_cycles as f64)
            .collect();
        assert!((0..16 * 5).any(|l| in_window(2 * l) > 0 && in_window(2 * l + 1) > 0));
        assert_eq!(r.link_utilization, util);
    }

    /// A latency run measures exactly the packets created in its window
    /// (at this load, 0.2 flits per node and cycle, no queue holds a packet
    /// BookSim2 has not made when measurement starts), drains them all,
    /// and neither measures nor waits for the packets created while
    /// draining; its offered rate is the flits the source created in the
    /// window, per node. The window of 410 cycles is not a multiple of the
    /// source's period, so nodes get 20 or 21 packets.
    #[test]
    fn a_latency_run_measures_the_packets_created_in_its_window() {
        let mut net = Network::new(mesh_cfg(4, 4)).unwrap();
        let src = || Periodic {
            n: 16,
            size: 4,
            every: 20,
        };
        let ctl = SimControl {
            warmup_periods: 1,
            sample_period: 205,
            max_samples: 3,
            ..Default::default()
        };
        let mut all = Vec::new();
        let r = run_measured_observed(&mut net, &mut src(), &ctl, &mut |_, _| {}, &mut |d| {
            all.push(*d)
        })
        .unwrap();
        assert_eq!(r.status, Status::Ok);
        let (start, end) = (r.measure_start, r.measure_start + r.measured_cycles);
        assert_eq!((start, end), (205, 615));
        for d in &all {
            assert_eq!(
                d.tag == 1,
                (start..end).contains(&d.ctime),
                "created at {}",
                d.ctime
            );
        }
        let measured: Vec<&Delivered> = all.iter().filter(|d| d.tag == 1).collect();
        // Every packet created in the window, by hand, was delivered.
        let mut offered = [0u64; 16];
        let mut created = 0;
        let mut ps = Vec::new();
        for t in start..end {
            ps.clear();
            src().generate(t, &mut ps);
            for p in &ps {
                offered[p.src as usize] += p.size as u64;
                created += 1;
            }
        }
        assert_eq!(
            (measured.len() as u64, r.packet_latency.count),
            (created, created)
        );
        assert!(all.iter().any(|d| d.ctime >= end));
        assert_eq!(r.offered, rate_summary(&offered, end - start));
        assert!(r.offered.min < r.offered.max);
        // Accepted packets: those whose tail left the network in the
        // window (cycle of the tail `atime`), per destination.
        let mut accepted = [0u64; 16];
        for d in all.iter().filter(|d| (start..end).contains(&d.atime)) {
            accepted[d.dst as usize] += 1;
        }
        assert_eq!(r.accepted_packets, rate_summary(&accepted, end - start));
        // Network latency over the measured packets; flit latency over
        // every packet retired from the window's start on (BookSim2's
        // `_flat_stats`: measured or not, drain included).
        let nlat: u64 = measured.iter().map(|d| d.atime - d.itime).sum();
        assert_eq!(r.network_latency.mean, nlat as f64 / measured.len() as f64);
        let after: Vec<&Delivered> = all.iter().filter(|d| d.atime >= start).collect();
        let flits: u64 = after.iter().map(|d| d.size as u64).sum();
        let flit_lat: u64 = after.iter().map(|d| d.flit_latency_sum).sum();
        assert_eq!(r.flit_latency.count, flits);
        assert_eq!(r.flit_latency.mean, flit_lat as f64 / flits as f64);
    }

    /// Measurement ends after three consecutive sample periods whose
    /// latency and accepted rate change by less than the stopping
    /// thresholds, or after `max_samples` periods in all; with
    /// `warmup_periods = 0`, warm-up ends at the first period that changes
    /// by less than the warm-up thresholds (the first changes by 100%,
    /// from nothing).
    #[test]
    fn sample_periods_follow_the_thresholds() {
        const P: u64 = 150;
        let run = |ctl: SimControl| {
            let mut net = Network::new(mesh_cfg(4, 4)).unwrap();
            let mut src = Periodic {
                n: 16,
                size: 4,
                every: 20,
            };
            let r = run_measured(&mut net, &mut src, &ctl, &mut |_, _| {}).unwrap();
            assert_eq!(r.status, Status::Ok);
            (r.measure_start / P, r.measured_cycles / P)
        };
        let ctl = |warmup_periods, warmup_thres, stopping_thres| SimControl {
            warmup_periods,
            sample_period: P,
            max_samples: 12,
            warmup_thres,
            acc_warmup_thres: warmup_thres,
            stopping_thres,
            acc_stopping_thres: stopping_thres,
            ..Default::default()
        };
        // Every period converges: three measured.
        assert_eq!(run(ctl(2, 0.05, 10.0)), (2, 3));
        // None does: all but the warm-up's.
        assert_eq!(run(ctl(2, 0.05, 0.0)), (2, 10));
        // Warm-up by threshold: after the first period, or the second.
        assert_eq!(run(ctl(0, 10.0, 10.0)), (1, 3));
        assert_eq!(run(ctl(0, 0.9, 10.0)), (2, 3));
    }

    /// The 2×2 mesh of the burst tests: `vcs` VCs a port, with or without
    /// `wait_for_tail_credit`.
    fn burst_net(vcs: usize, wait_tail: bool) -> Network {
        Network::new(NetworkConfig {
            router: wafernoc_router::RouterConfig {
                num_vcs: vcs,
                wait_for_tail_credit: wait_tail,
                ..Default::default()
            },
            ..mesh_cfg(2, 2)
        })
        .unwrap()
    }

    /// Node 0 creates `n` 4-flit packets for node 3 at cycle 0.
    struct Burst {
        n: u32,
    }

    impl TrafficSource for Burst {
        fn generate(&mut self, t: u64, out: &mut Vec<NewPacket>) {
            if t == 0 {
                out.extend((0..self.n).map(|_| NewPacket {
                    src: 0,
                    dst: 3,
                    size: 4,
                    class: 0,
                    ctime: 0,
                    tag: 0,
                }));
            }
        }
    }

    /// BookSim2 makes a source's next packet (creation time in the past)
    /// in the step after the last one's tail left, and measures it if
    /// measurement has started by then. Ten packets created at cycle 0
    /// leave one after the other, the flits of each back to back (buffers
    /// of 8 flits, nothing else in the network), so packet k > 0 is made
    /// at its predecessor's head cycle + 4; with warm-up ending at cycle
    /// `S`, exactly the packets made at `S` or later are measured, for
    /// every `S`. With 4 VCs a packet's head leaves the cycle it is made,
    /// so at a warm-up's end a queue's front whose head has not left was
    /// made in the next step (its predecessor's tail left in the warm-up's
    /// last cycle). With one VC that waits for its tail credit, heads wait
    /// a few cycles after being made, so the front was made before.
    #[test]
    fn packets_queued_at_the_end_of_warm_up_are_measured_as_in_booksim2() {
        for (vcs, wait_tail) in [(4, false), (1, true)] {
            let mut edge = false;
            let mut waited = false;
            for s in 1..=48u64 {
                let mut net = burst_net(vcs, wait_tail);
                let ctl = SimControl {
                    warmup_periods: 1,
                    sample_period: s,
                    max_samples: 3,
                    ..Default::default()
                };
                let mut got = Vec::new();
                let r = run_measured_observed(
                    &mut net,
                    &mut Burst { n: 10 },
                    &ctl,
                    &mut |_, _| {},
                    &mut |d| got.push((d.itime, d.tag)),
                )
                .unwrap();
                got.sort();
                assert_eq!(got.len(), 10);
                let mut measured = 0;
                for (k, &(itime, tag)) in got.iter().enumerate() {
                    let made = if k == 0 { 0 } else { got[k - 1].0 + 4 };
                    assert!(itime >= made);
                    let expect = made >= s;
                    assert_eq!(tag == 1, expect, "S = {s}, packet {k}: {got:?}");
                    measured += expect as u64;
                    // A front made at the warm-up's end, and one made
                    // before it whose head was still waiting.
                    edge |= k > 0 && made == s;
                    waited |= made < s && itime >= s;
                }
                assert_eq!(r.packet_latency.count, measured, "S = {s}");
            }
            assert!(edge);
            assert_eq!(waited, wait_tail, "{vcs} VCs");
        }
    }

    /// BookSim2's in-flight flits, by hand: the burst's packets made by
    /// the end of the last cycle (packet 0 in cycle 0, packet k > 0 at its
    /// predecessor's head cycle + 4, as in the test above), 4 flits each,
    /// less the flits ejected; all created at cycle 0, so each is `now`
    /// cycles old. Checked before and after every step: before one, the
    /// burst is enqueued but not yet made.
    #[test]
    fn flits_in_flight_are_the_made_packets_not_yet_ejected() {
        for (vcs, wait_tail) in [(4, false), (1, true)] {
            let net = || burst_net(vcs, wait_tail);
            let burst = |net: &mut Network, t: u64| {
                let mut ps = Vec::new();
                Burst { n: 10 }.generate(t, &mut ps);
                net.enqueue_all(&ps).unwrap();
            };
            let mut first = net();
            let mut itimes = Vec::new();
            for t in 0..400 {
                burst(&mut first, t);
                first.step().unwrap();
                itimes.extend(first.drain_delivered().map(|d| d.itime));
            }
            itimes.sort();
            assert_eq!(itimes.len(), 10);
            let made: Vec<u64> = (0..10)
                .map(|k| if k == 0 { 0 } else { itimes[k - 1] + 4 })
                .collect();
            let mut again = net();
            let mut partial = false;
            for t in 0..400 {
                burst(&mut again, t);
                let flits = |now: u64, ejected: u64| {
                    let n = made.iter().filter(|&&m| m < now).count() as u64;
                    4 * n - ejected
                };
                let before = flits(t, again.counters().ejected_flits);
                assert_eq!(
                    again.in_flight_ages(),
                    (before * t, before),
                    "{vcs} VCs, before {t}"
                );
                again.step().unwrap();
                let after = flits(t + 1, again.counters().ejected_flits);
                assert_eq!(
                    again.in_flight_ages(),
                    (after * (t + 1), after),
                    "{vcs} VCs, after {t}"
                );
                partial |= after % 4 != 0;
            }
            assert_eq!(again.in_flight_ages(), (0, 0));
            assert!(partial, "no packet was ever caught half ejected");
        }
    }

    /// Every node sends a 4-flit packet every cycle to node 0: far past
    /// saturation, so that the flits in flight are older than the packets
    /// retired so far.
    struct Flood;

    impl TrafficSource for Flood {
        fn generate(&mut self, t: u64, out: &mut Vec<NewPacket>) {
            out.extend((1..4).map(|s| NewPacket {
                src: s,
                dst: 0,
                size: 4,
                class: 0,
                ctime: t,
                tag: 0,
            }));
        }
    }

    /// Flood on a 2×2 mesh by hand for three sample periods of `p`
    /// cycles, statistics cleared at the start of periods 0 and 2 (as the
    /// default warm-up does): at each period's end, the mean latency of the
    /// packets retired since the last clearing, and the mean over those and
    /// every flit in flight (BookSim2's threshold mean).
    fn flood_means(p: u64) -> Vec<(f64, f64)> {
        let mut net = Network::new(mesh_cfg(2, 2)).unwrap();
        let (mut sum, mut count) = (0u64, 0u64);
        let mut means = Vec::new();
        while net.now() < 3 * p {
            if net.now() == 2 * p {
                (sum, count) = (0, 0);
            }
            for d in step_by_hand(&mut net, &mut Flood) {
                sum += d.atime - d.ctime;
                count += 1;
            }
            if net.now() % p == 0 {
                let (age_sum, age_n) = net.in_flight_ages();
                means.push((
                    sum as f64 / count as f64,
                    (sum + age_sum) as f64 / (count + age_n) as f64,
                ));
            }
        }
        means
    }

    /// BookSim2's latency-threshold test at a sample period's end is over
    /// the packets retired since the last clearing and every flit in
    /// flight (each its packet's age), not the retired packets alone: a
    /// threshold between the two means aborts the run at the first
    /// period's end, with the first as its mean; one just above it does
    /// not abort there.
    #[test]
    fn the_latency_threshold_counts_the_flits_in_flight() {
        const PERIOD: u64 = 300;
        // The first sample period, by hand.
        let (retired, with_flight) = flood_means(PERIOD)[0];
        assert!(retired + 10.0 < with_flight, "{retired} {with_flight}");
        let run = |thres: f64| {
            let ctl = SimControl {
                sample_period: PERIOD,
                latency_thres: thres,
                ..Default::default()
            };
            let mut net = Network::new(mesh_cfg(2, 2)).unwrap();
            run_measured(&mut net, &mut Flood, &ctl, &mut |_, _| {}).unwrap()
        };
        let r = run((retired + with_flight) / 2.0);
        assert_eq!(r.status, Status::Unstable);
        assert_eq!(
            r.unstable,
            Some(Unstable::LatencyThreshold {
                phase: "warm-up",
                cycle: PERIOD,
                mean_latency: with_flight,
                threshold: (retired + with_flight) / 2.0,
            })
        );
        let r = run(with_flight + 1.0);
        match r.unstable {
            Some(Unstable::LatencyThreshold { cycle, .. }) => assert!(cycle > PERIOD),
            u => panic!("{u:?}"),
        }
    }

    /// `Periodic` traffic every 9 cycles, 4-flit packets, on 16 nodes.
    fn every9() -> Periodic {
        Periodic {
            n: 16,
            size: 4,
            every: 9,
        }
    }

    /// By hand, the relative changes (`|cur − prev| / cur`, BookSim2's)
    /// of each sample period's mean latency and accepted flits per node
    /// and cycle, both since the last clearing, on the 4×4 mesh under
    /// `every9` with periods of `p` cycles:
    /// cleared at each even warm-up period's start and when measurement
    /// starts with period `measure_from`, from then on counting the
    /// measured packets only (those created since, and those still queued
    /// that `measure_queued` marks). The first period changes by 100%.
    fn hand_changes(p: u64, periods: u64, measure_from: u64) -> Vec<(f64, f64)> {
        let mut net = Network::new(mesh_cfg(4, 4)).unwrap();
        let (mut sum, mut count, mut eject0, mut t0) = (0u64, 0u64, 0u64, 0u64);
        let mut changes = Vec::new();
        let (mut prev_lat, mut prev_acc) = (0.0f64, 0.0f64);
        for phase in 0..periods {
            if phase == measure_from || (phase < measure_from && phase % 2 == 0) {
                (sum, count) = (0, 0);
                (eject0, t0) = (net.counters().ejected_flits, net.now());
            }
            if phase == measure_from {
                net.measure_queued(1);
            }
            for _ in 0..p {
                for d in step_by_hand(&mut net, &mut every9()) {
                    let measured = d.tag == 1 || d.ctime >= measure_from.saturating_mul(p);
                    if phase < measure_from || measured {
                        sum += d.atime - d.ctime;
                        count += 1;
                    }
                }
            }
            let lat = sum as f64 / count as f64;
            let acc =
                (net.counters().ejected_flits - eject0) as f64 / 16.0 / (net.now() - t0) as f64;
            changes.push((
                ((lat - prev_lat) / lat).abs(),
                ((acc - prev_acc) / acc).abs(),
            ));
            (prev_lat, prev_acc) = (lat, acc);
        }
        changes
    }

    /// With `warmup_periods = 0`, warm-up ends at the first period whose
    /// latency and accepted rate changed by less than the warm-up
    /// thresholds. By hand (`hand_changes`), the period each pair of
    /// thresholds predicts; thresholds at half and one and a half times
    /// period 2's changes. Throughput mode tests the accepted rate's
    /// change alone.
    #[test]
    fn warm_up_ends_on_relative_changes() {
        const P: u64 = 100;
        let changes = hand_changes(P, 8, u64::MAX);
        let predict = |w: f64, aw: f64| {
            changes
                .iter()
                .position(|&(dl, da)| dl < w && da < aw)
                .unwrap() as u64
                + 1
        };
        let (dl2, da2) = changes[1];
        assert!(dl2 > 0.0 && da2 > 0.0, "{changes:?}");
        let mut seen = Vec::new();
        // Throughput mode ignores the latency's change: a threshold of 0
        // would never pass.
        let lat = SimMode::Latency;
        let thr = SimMode::Throughput;
        for (mode, w, aw) in [
            (lat, 1.5 * dl2, 10.0),
            (lat, 0.5 * dl2, 10.0),
            (lat, 10.0, 1.5 * da2),
            (lat, 10.0, 0.5 * da2),
            (thr, 0.0, 1.5 * da2),
            (thr, 0.0, 0.5 * da2),
        ] {
            let ctl = SimControl {
                sim_type: mode,
                warmup_periods: 0,
                sample_period: P,
                max_samples: 20,
                warmup_thres: w,
                acc_warmup_thres: aw,
                stopping_thres: 10.0,
                acc_stopping_thres: 10.0,
                ..Default::default()
            };
            let mut net = Network::new(mesh_cfg(4, 4)).unwrap();
            let r = run_measured(&mut net, &mut every9(), &ctl, &mut |_, _| {}).unwrap();
            let want = match mode {
                SimMode::Latency => predict(w, aw),
                SimMode::Throughput => predict(f64::INFINITY, aw),
            };
            assert_eq!(
                r.measure_start,
                want * P,
                "{mode:?}, thresholds {w} {aw}: {changes:?}"
            );
            seen.push(want);
        }
        // The thresholds do tell periods apart.
        assert!(
            seen[0] < seen[1] && seen[2] < seen[3] && seen[4] < seen[5],
            "{seen:?}"
        );
    }

    /// Measurement stops after three consecutive periods whose changes
    /// are below the stopping thresholds: in latency mode both the
    /// latency's and the accepted rate's, in throughput mode the accepted
    /// rate's alone. Predicted by hand (`hand_changes`, measurement from
    /// period 1 after a one-period warm-up) for thresholds that bind one
    /// change at a time. The thresholds (0.005) fall among the changes
    /// (0.2 down to 0.0003 here): checked, since the predictions must
    /// differ from the three periods that ignoring the binding threshold
    /// would give, and from never stopping.
    #[test]
    fn measurement_stops_on_relative_changes() {
        const P: u64 = 100;
        const MAX: u32 = 12;
        let changes = hand_changes(P, MAX as u64, 1);
        let predict = |mode: SimMode, st: f64, ast: f64| {
            let mut converged = 0;
            for (k, &(dl, da)) in changes[1..].iter().enumerate() {
                let ok = match mode {
                    SimMode::Latency => dl < st && da < ast,
                    SimMode::Throughput => da < ast,
                };
                converged = if ok { converged + 1 } else { 0 };
                if converged == 3 {
                    return k as u64 + 1;
                }
            }
            MAX as u64 - 1
        };
        let (lat, thr) = (SimMode::Latency, SimMode::Throughput);
        let cases = [(lat, 0.005, 10.0), (lat, 10.0, 0.005), (thr, 0.0, 0.005)];
        for (mode, st, ast) in cases {
            let ctl = SimControl {
                sim_type: mode,
                warmup_periods: 1,
                sample_period: P,
                max_samples: MAX,
                stopping_thres: st,
                acc_stopping_thres: ast,
                ..Default::default()
            };
            let mut net = Network::new(mesh_cfg(4, 4)).unwrap();
            let r = run_measured(&mut net, &mut every9(), &ctl, &mut |_, _| {}).unwrap();
            let want = predict(mode, st, ast);
            assert!(
                want > 3 && want < MAX as u64 - 1,
                "{mode:?} {st} {ast}: {changes:?}"
            );
            assert_eq!(r.measure_start, P);
            assert_eq!(
                r.measured_cycles,
                want * P,
                "{mode:?} {st} {ast}: {changes:?}"
            );
        }
    }

    /// Warm-up clears its statistics at the start of periods 0 and 2 (of
    /// BookSim2's default 3): the mean tested at the third period's end is
    /// over the packets retired since cycle 2P and the flits then in
    /// flight. By hand, the means at the three periods' ends; a threshold
    /// between the first two and the third aborts the run at 3P with the
    /// third as its mean.
    #[test]
    fn warm_up_clears_its_statistics_at_periods_0_and_2() {
        const P: u64 = 200;
        let means: Vec<f64> = flood_means(P).iter().map(|m| m.1).collect();
        let thres = (means[0].max(means[1]) + means[2]) / 2.0;
        assert!(means[2] > means[0].max(means[1]), "{means:?}");
        let ctl = SimControl {
            sample_period: P,
            latency_thres: thres,
            ..Default::default()
        };
        let mut net = Network::new(mesh_cfg(2, 2)).unwrap();
        let r = run_measured(&mut net, &mut Flood, &ctl, &mut |_, _| {}).unwrap();
        assert_eq!(
            r.unstable,
            Some(Unstable::LatencyThreshold {
                phase: "warm-up",
                cycle: 3 * P,
                mean_latency: means[2],
                threshold: thres,
            })
        );
    }

    /// The threshold is checked at each sample period's end and, while
    /// the measured packets drain, every 1000 cycles, strictly (a mean
    /// equal to the threshold passes). One warm-up period and one measured
    /// one of 300 cycles: the flood's measured packets, most of them queued
    /// behind its saturated sources, then take thousands of cycles to
    /// leave, and the mean grows all along. The thresholds put each abort
    /// in a different phase (asserted, so the scenario cannot drift).
    #[test]
    fn the_drain_checks_the_latency_threshold_every_1000_cycles() {
        let run = |thres: f64| {
            let ctl = SimControl {
                warmup_periods: 1,
                sample_period: 300,
                max_samples: 2,
                latency_thres: thres,
                ..Default::default()
            };
            let mut net = Network::new(mesh_cfg(2, 2)).unwrap();
            match run_measured(&mut net, &mut Flood, &ctl, &mut |_, _| {})
                .unwrap()
                .unstable
            {
                Some(Unstable::LatencyThreshold {
                    phase,
                    cycle,
                    mean_latency,
                    threshold,
                }) => {
                    assert!(mean_latency > threshold);
                    (phase, cycle, mean_latency)
                }
                u => panic!("threshold {thres}: {u:?}"),
            }
        };
        assert_eq!(run(200.0).0, "warm-up");
        let (phase, cycle, at_end) = run(400.0);
        assert_eq!((phase, cycle), ("measure", 600));
        let (phase, cycle, first) = run(1000.0);
        assert_eq!((phase, cycle), ("drain", 1600));
        assert!(first > at_end);
        let (phase, cycle, second) = run(first);
        assert_eq!((phase, cycle), ("drain", 2600));
        assert!(second > first);
    }

    #[test]
    fn measurement_keys_are_checked() {
        SimControl::default().validate().unwrap();
        let key = |c: SimControl| match c.validate().unwrap_err() {
            crate::ConfigError::Other { key, .. } => key,
            e => panic!("{e}"),
        };
        let d = SimControl::default;
        assert_eq!(
            key(SimControl {
                sample_period: 0,
                ..d()
            }),
            "sample_period"
        );
        assert_eq!(
            key(SimControl {
                max_samples: 0,
                ..d()
            }),
            "max_samples"
        );
        assert_eq!(
            key(SimControl {
                latency_thres: f64::NAN,
                ..d()
            }),
            "latency_thres"
        );
        assert_eq!(
            key(SimControl {
                warmup_thres: -0.1,
                ..d()
            }),
            "warmup_thres"
        );
        assert_eq!(
            key(SimControl {
                acc_stopping_thres: f64::INFINITY,
                ..d()
            }),
            "acc_stopping_thres"
        );
    }
}
