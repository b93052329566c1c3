//! Lean single-thread model of BookSim2's `iq` router on a k x k mesh.
//! See ../../README.md for the timing conventions.
//!
//! Timing (all stages 1 cycle; "usable from" stamps stored with every flit):
//! - switch grant at g: flit written into the downstream input buffer with
//!   stamp g+4 (crossbar, link, input register -> written at a = g+3; a head is
//!   routed at a and may take part in VA from a+1 = g+4; a body may take part
//!   in SA from a+1 = g+4).
//! - the freed slot's credit is usable by the upstream SA from g+3.
//! - NI sends at t: written into the local input buffer at a = t+2 (stamp t+3).
//! - ejection: the flit reaches the NI at g+3.
//! - VA grant at t: SA from t+1. Tail switched at t: output VC free for VA at t+1;
//!   the next head in the same input VC is routed at t+1, VA from t+2.

use std::collections::VecDeque;
use std::time::Instant;

const K: usize = 8;
const N: usize = K * K;
const P: usize = 5; // E, W, N, S, local
const V: usize = 4;
const B: usize = 8; // buffer depth (power of two)
const PKT: u32 = 4;
const LOCAL: usize = 4;
const NONE: u32 = u32::MAX;

const IDLE: u8 = 0;
const VAW: u8 = 1; // waiting for VC allocation
const ACT: u8 = 2; // has output VC

// flit encoding: ctime(18) << 14 | src(6) << 8 | dst(6) << 2 | idx(2)
const TMASK: u32 = (1 << 18) - 1;
#[inline]
fn f_dst(f: u32) -> usize {
    ((f >> 2) & 63) as usize
}
#[inline]
fn f_src(f: u32) -> usize {
    ((f >> 8) & 63) as usize
}
#[inline]
fn f_ctime(f: u32) -> u32 {
    f >> 14
}

struct Rng(u64);
impl Rng {
    #[inline]
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
}

#[inline]
fn route(r: usize, dst: usize) -> u8 {
    let (rx, ry) = (r % K, r / K);
    let (dx, dy) = (dst % K, dst / K);
    if dx > rx {
        0
    } else if dx < rx {
        1
    } else if dy > ry {
        2
    } else if dy < ry {
        3
    } else {
        LOCAL as u8
    }
}

/// round-robin pick: lowest set bit at or above `ptr`, else lowest set bit.
#[inline]
fn rr(mask: u32, ptr: u32) -> u32 {
    let hi = mask & !((1u32 << ptr) - 1);
    if hi != 0 { hi.trailing_zeros() } else { mask.trailing_zeros() }
}

#[derive(Clone, Copy, Default)]
struct Slot {
    flit: u32,
    stamp: u32,
}

#[derive(Clone, Copy, Default)]
struct Ivc {
    head: u32, // departures
    tail: u32, // writes
    state: u8,
    oport: u8,
    ovc: u8,
    gate: u32, // VAW: VA from; ACT: SA from
}

#[derive(Clone, Copy, Default)]
struct Router {
    owned: [u8; P],          // output VCs held, per output port
    va_ptr: [[u8; V]; P],    // per output VC: RR over the 20 input VCs
    va_iptr: [u8; P * V],    // per input VC: RR over the 4 output VCs
    sa_gptr: [u8; P],        // iSLIP grant pointer per output
    sa_aptr: [u8; P],        // iSLIP accept pointer per input
    sa_vptr: [u8; P],        // per input port: RR over its VCs
}

struct Ni {
    q: VecDeque<u32>, // flit base (idx 0) of queued packets
    busy: bool,
    idx: u32,
    vc: u8,
    owned: u8,
    vptr: u8,
    cur: u32,
}

struct Sim {
    now: u32,
    rate_thr: u64,
    rng: Rng,
    slots: Vec<[Slot; B]>,
    ivc: Vec<Ivc>,
    routers: Vec<Router>,
    ds: Vec<u32>, // per (router, out port): downstream input port index (r'*P + p'), NONE
    ni: Vec<Ni>,
    // stats
    flit_hops: u64,
    lat_sum: u64,
    lat_n: u64,
    hops_sum: u64,
    ejected_flits: u64,
    last_lat: u32,
}

impl Sim {
    fn new(rate: f64, seed: u64) -> Sim {
        let mut ds = vec![NONE; N * P];
        for r in 0..N {
            let (x, y) = (r % K, r / K);
            if x + 1 < K {
                ds[r * P] = ((r + 1) * P + 1) as u32;
            }
            if x > 0 {
                ds[r * P + 1] = ((r - 1) * P) as u32;
            }
            if y + 1 < K {
                ds[r * P + 2] = ((r + K) * P + 3) as u32;
            }
            if y > 0 {
                ds[r * P + 3] = ((r - K) * P + 2) as u32;
            }
        }
        let p = rate / PKT as f64;
        Sim {
            now: 0,
            rate_thr: (p * 18446744073709551616.0) as u64,
            rng: Rng(seed),
            slots: vec![[Slot::default(); B]; N * P * V],
            ivc: vec![Ivc::default(); N * P * V],
            routers: vec![Router::default(); N],
            ds,
            ni: (0..N)
                .map(|_| Ni { q: VecDeque::new(), busy: false, idx: 0, vc: 0, owned: 0, vptr: 0, cur: 0 })
                .collect(),
            flit_hops: 0,
            lat_sum: 0,
            lat_n: 0,
            hops_sum: 0,
            ejected_flits: 0,
            last_lat: 0,
        }
    }

    #[inline]
    fn has_credit(&self, dvc: usize) -> bool {
        let v = &self.ivc[dvc];
        v.tail.wrapping_sub(v.head) < B as u32
            && self.slots[dvc][(v.tail as usize) & (B - 1)].stamp <= self.now
    }

    /// write flit into input VC `dvc` of router `r`, usable from `stamp`.
    #[inline]
    fn deliver(&mut self, dvc: usize, r: usize, flit: u32, stamp: u32) {
        let v = &mut self.ivc[dvc];
        let t = v.tail as usize & (B - 1);
        self.slots[dvc][t] = Slot { flit, stamp };
        if v.state == IDLE {
            debug_assert!(v.head == v.tail && flit & 3 == 0);
            v.state = VAW;
            v.oport = route(r, f_dst(flit));
            v.gate = stamp;
        }
        v.tail = v.tail.wrapping_add(1);
    }

    fn generate(&mut self) {
        let now = self.now;
        for n in 0..N {
            if self.rng.next() < self.rate_thr {
                let d = (self.rng.next() >> 58) as u32;
                let f = ((now & TMASK) << 14) | ((n as u32) << 8) | (d << 2);
                self.ni[n].q.push_back(f);
            }
        }
    }

    fn inject(&mut self, n: usize) {
        let base = (n * P + LOCAL) * V;
        if !self.ni[n].busy {
            if self.ni[n].q.is_empty() {
                return;
            }
            // choose a free injection VC with credit, round robin
            let mut cand = 0u32;
            for v in 0..V {
                if self.ni[n].owned & (1 << v) == 0 && self.has_credit(base + v) {
                    cand |= 1 << v;
                }
            }
            if cand == 0 {
                return;
            }
            let v = rr(cand, self.ni[n].vptr as u32);
            let ni = &mut self.ni[n];
            ni.vptr = ((v + 1) % V as u32) as u8;
            ni.busy = true;
            ni.idx = 0;
            ni.vc = v as u8;
            ni.owned |= 1 << v;
            ni.cur = ni.q.pop_front().unwrap();
        }
        let v = self.ni[n].vc as usize;
        if !self.has_credit(base + v) {
            return;
        }
        let f = self.ni[n].cur | self.ni[n].idx;
        let st = self.now + 3;
        self.deliver(base + v, n, f, st);
        let ni = &mut self.ni[n];
        ni.idx += 1;
        if ni.idx == PKT {
            ni.busy = false;
            ni.owned &= !(1 << v);
        }
    }

    fn vc_alloc(&mut self, r: usize) {
        let now = self.now;
        let base = r * P * V;
        let mut req = [0u32; P];
        let mut any = 0u32;
        for i in 0..P * V {
            let v = &self.ivc[base + i];
            if v.state == VAW && v.gate <= now {
                req[v.oport as usize] |= 1 << i;
                any = 1;
            }
        }
        if any == 0 {
            return;
        }
        let rt = &mut self.routers[r];
        let mut grants = [0u8; P * V];
        let mut gmask = 0u32;
        for o in 0..P {
            if req[o] == 0 {
                continue;
            }
            let mut free = (!rt.owned[o]) as u32 & 0xF;
            while free != 0 {
                let ov = free.trailing_zeros() as usize;
                free &= free - 1;
                let w = rr(req[o], rt.va_ptr[o][ov] as u32) as usize;
                grants[w] |= 1 << ov;
                gmask |= 1 << w;
            }
        }
        while gmask != 0 {
            let i = gmask.trailing_zeros() as usize;
            gmask &= gmask - 1;
            let ov = rr(grants[i] as u32, rt.va_iptr[i] as u32) as usize;
            rt.va_iptr[i] = ((ov + 1) % V) as u8;
            let v = &mut self.ivc[base + i];
            let o = v.oport as usize;
            rt.va_ptr[o][ov] = ((i + 1) % (P * V)) as u8;
            rt.owned[o] |= 1 << ov;
            v.state = ACT;
            v.ovc = ov as u8;
            v.gate = now + 1;
        }
    }

    fn sw_alloc(&mut self, r: usize) {
        let now = self.now;
        let base = r * P * V;
        // per input port, per output port: mask of requesting VCs
        let mut vreq = [[0u8; P]; P];
        let mut inreq = [0u8; P]; // per input: outputs requested
        let mut outreq = [0u8; P]; // per output: inputs requesting
        for i in 0..P * V {
            let v = &self.ivc[base + i];
            if v.state != ACT || v.head == v.tail || v.gate > now {
                continue;
            }
            if self.slots[base + i][(v.head as usize) & (B - 1)].stamp > now {
                continue;
            }
            let o = v.oport as usize;
            if o != LOCAL {
                let d = self.ds[r * P + o] as usize * V + v.ovc as usize;
                if !self.has_credit(d) {
                    continue;
                }
            }
            let ip = i / V;
            vreq[ip][o] |= 1 << (i % V);
            inreq[ip] |= 1 << o;
            outreq[o] |= 1 << ip;
        }
        // iSLIP, one iteration
        let mut granted = [0u8; P]; // per input: outputs that granted it
        for o in 0..P {
            if outreq[o] != 0 {
                let i = rr(outreq[o] as u32, self.routers[r].sa_gptr[o] as u32) as usize;
                granted[i] |= 1 << o;
            }
        }
        for ip in 0..P {
            if granted[ip] == 0 {
                continue;
            }
            let rt = &mut self.routers[r];
            let o = rr(granted[ip] as u32, rt.sa_aptr[ip] as u32) as usize;
            rt.sa_aptr[ip] = ((o + 1) % P) as u8;
            rt.sa_gptr[o] = ((ip + 1) % P) as u8;
            let vc = rr(vreq[ip][o] as u32, rt.sa_vptr[ip] as u32) as usize;
            rt.sa_vptr[ip] = ((vc + 1) % V) as u8;
            self.traverse(r, ip * V + vc);
        }
    }

    #[inline]
    fn traverse(&mut self, r: usize, i: usize) {
        let now = self.now;
        let g = r * P * V + i;
        let (flit, o, ov) = {
            let v = &mut self.ivc[g];
            let h = v.head as usize & (B - 1);
            let s = &mut self.slots[g][h];
            let flit = s.flit;
            s.stamp = now + 3; // credit usable upstream from now+3
            v.head = v.head.wrapping_add(1);
            (flit, v.oport as usize, v.ovc as usize)
        };
        let tail = flit & 3 == PKT - 1;
        if tail {
            self.routers[r].owned[o] &= !(1 << ov);
            let v = &mut self.ivc[g];
            if v.head != v.tail {
                let h = v.head as usize & (B - 1);
                let s = self.slots[g][h];
                v.state = VAW;
                v.oport = route(r, f_dst(s.flit));
                v.gate = s.stamp.max(now + 2);
            } else {
                v.state = IDLE;
            }
        }
        if o == LOCAL {
            self.ejected_flits += 1;
            if tail {
                let lat = (now + 3).wrapping_sub(f_ctime(flit)) & TMASK;
                self.lat_sum += lat as u64;
                self.lat_n += 1;
                let (s, d) = (f_src(flit), f_dst(flit));
                self.hops_sum += ((s % K).abs_diff(d % K) + (s / K).abs_diff(d / K)) as u64;
                self.last_lat = lat;
            }
        } else {
            self.flit_hops += 1;
            let dp = self.ds[r * P + o] as usize;
            self.deliver(dp * V + ov, dp / P, flit, now + 4);
        }
    }

    fn step(&mut self, generate: bool) {
        if generate {
            self.generate();
        }
        for r in 0..N {
            self.inject(r);
            self.vc_alloc(r);
            self.sw_alloc(r);
        }
        self.now += 1;
    }

    fn reset_stats(&mut self) {
        self.flit_hops = 0;
        self.lat_sum = 0;
        self.lat_n = 0;
        self.hops_sum = 0;
        self.ejected_flits = 0;
    }
}

fn zero_load() {
    let mut ok = true;
    for (s, d) in [(0usize, 0usize), (0, 1), (0, 63), (27, 36), (63, 0), (9, 14), (7, 56)] {
        let mut sim = Sim::new(0.0, 1);
        sim.ni[s].q.push_back(((s as u32) << 8) | ((d as u32) << 2));
        for _ in 0..200 {
            sim.step(false);
        }
        let h = ((s % K).abs_diff(d % K) + (s / K).abs_diff(d / K)) as u32;
        let t0 = 7 + 5 * h + (PKT - 1);
        println!(
            "zero-load {s:2} -> {d:2}: H={h} latency={} closed form 7+5H+(P-1)={t0} hops={} {}",
            sim.last_lat,
            sim.flit_hops,
            if sim.last_lat == t0 { "OK" } else { "MISMATCH" }
        );
        ok &= sim.last_lat == t0 && sim.lat_n == 1;
    }
    println!("zero-load check: {}", if ok { "PASS" } else { "FAIL" });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() > 1 && args[1] == "zero" {
        zero_load();
        return;
    }
    let rate: f64 = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(0.3);
    let cycles: u32 = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(200_000);
    let warm: u32 = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(5_000);
    let seed: u64 = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(12345);
    let mut sim = Sim::new(rate, seed);
    for _ in 0..warm {
        sim.step(true);
    }
    sim.reset_stats();
    let t = Instant::now();
    for _ in 0..cycles {
        sim.step(true);
    }
    let el = t.elapsed().as_secs_f64();
    let qlen: usize = sim.ni.iter().map(|n| n.q.len()).sum();
    println!(
        "rate {rate} cycles {cycles} time {:.3}s cycles/s {:.0} flit-hops/s {:.3e} flit-hops/cycle {:.2} \
         latency {:.2} hops {:.3} packets {} accepted {:.4} flits/node/cycle srcq {}",
        el,
        cycles as f64 / el,
        sim.flit_hops as f64 / el,
        sim.flit_hops as f64 / cycles as f64,
        sim.lat_sum as f64 / sim.lat_n as f64,
        sim.hops_sum as f64 / sim.lat_n as f64,
        sim.lat_n,
        sim.ejected_flits as f64 / cycles as f64 / N as f64,
        qlen
    );
}
